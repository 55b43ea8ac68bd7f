"""CompareWithSession: a finished run against a live session, through the real backtest and live
services (SQLite and PostgreSQL).

The session is generated from the run's own trades, as the NautilusTrader bridge would have sent
them (position_closed events and their fills), with injected delays, worse prices and fees, one
trade dropped and one trade the backtest never made; the comparison must find exactly those.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.live.v1 import live_pb2
from tests.backtest.runs_support import running_service, spec
from tests.backtest.test_trades import list_all
from tests.live.publishing_support import live_database
from tests.live.support import running_live
from tests.support import eventually, field_violations, free_port

INSTANCE = "7d1b1c1e-8f3a-4a57-9d0c-3c9a3a5b2e10"
SESSION = f"TRADER-007:{INSTANCE}"
INSTRUMENT = "BTCUSDT.BINANCE"
SECOND = 10**9


def bridge_event(event_id: str, kind: int, at_ns: int, **payload: object) -> live_pb2.Event:
    message = live_pb2.Event(event_id=event_id, type=kind, run_id=SESSION, symbol=INSTRUMENT)
    message.time.FromNanoseconds(at_ns)
    message.payload.update({"trader_id": "TRADER-007", "instance_id": INSTANCE} | payload)
    return message


@dataclass(frozen=True)
class LiveTrade:
    """A round trip the session makes."""

    long: bool
    quantity: Decimal
    entry_ns: int
    exit_ns: int
    entry_price: Decimal
    exit_price: Decimal
    entry_fee: Decimal
    exit_fee: Decimal


def copy_of(trade: pb.Trade) -> LiveTrade:
    fees = Decimal(trade.fees)
    return LiveTrade(
        long=trade.side == pb.TRADE_SIDE_LONG,
        quantity=Decimal(trade.quantity),
        entry_ns=trade.entry_time.ToNanoseconds(),
        exit_ns=trade.exit_time.ToNanoseconds(),
        entry_price=Decimal(trade.average_entry_price),
        exit_price=Decimal(trade.average_exit_price),
        entry_fee=fees / 2,
        exit_fee=fees - fees / 2,
    )


def session_of(trades: list[LiveTrade]) -> list[live_pb2.Event]:
    """The bridge's events of round trips: two fills each (fees split) and the position_closed."""
    events: list[live_pb2.Event] = []
    for index, t in enumerate(trades):
        pid = f"{INSTRUMENT}-EMA-{index:03d}"
        buy, sell = ("BUY", "SELL") if t.long else ("SELL", "BUY")
        for leg, at, price, fee, side in (
            ("in", t.entry_ns, t.entry_price, t.entry_fee, buy),
            ("out", t.exit_ns, t.exit_price, t.exit_fee, sell),
        ):
            events.append(
                bridge_event(
                    f"fill-{index}-{leg}",
                    live_pb2.EVENT_TYPE_ORDER_FILLED,
                    at,
                    position_id=pid,
                    instrument_id=INSTRUMENT,
                    side=side,
                    quantity=str(t.quantity),
                    price=str(price),
                    commission={"amount": str(fee), "currency": "USDT"},
                )
            )
        gross = (1 if t.long else -1) * t.quantity * (t.exit_price - t.entry_price)
        events.append(
            bridge_event(
                f"closed-{index}",
                live_pb2.EVENT_TYPE_POSITION_CLOSED,
                t.exit_ns,
                position_id=pid,
                instrument_id=INSTRUMENT,
                strategy_id="EMA-001",
                entry=buy,
                side="FLAT",
                quantity="0",
                peak_quantity=str(t.quantity),
                average_open_price=str(t.entry_price),
                average_close_price=str(t.exit_price),
                realized_pnl={"amount": str(gross - t.entry_fee - t.exit_fee), "currency": "USDT"},
                currency="USDT",
                ts_opened=str(t.entry_ns),
                ts_closed=str(t.exit_ns),
            )
        )
    return events


async def test_a_session_with_injected_slippage_delays_and_a_dropped_trade_is_matched_back(
    database_url: str, data_dir: Path, tmp_path: Path
):
    port = free_port()
    async with (
        running_live(live_database(database_url, tmp_path), tmp_path, port=port) as live,
        running_service(database_url, data_dir, live_address=f"127.0.0.1:{port}") as service,
    ):
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        run = await service.wait(created.backtest.name)
        assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
        ran = sorted(
            await list_all(service.stub, backtest=run.name),
            key=lambda t: t.entry_time.ToNanoseconds(),
        )
        assert len(ran) >= 4
        entries = [t.entry_time.ToNanoseconds() for t in ran]
        spacing = min(b - a for a, b in itertools.pairwise(entries))
        assert spacing > 0
        # Delays well inside the matching gap, the gap well inside the spacing of the trades:
        # each live trade has exactly one right partner.
        gap = spacing // 2
        delay = spacing // 5

        copies = [copy_of(t) for t in ran]
        injected = replace(
            copies[0],
            entry_ns=copies[0].entry_ns + delay,
            exit_ns=copies[0].exit_ns + 2 * delay,
            entry_price=copies[0].entry_price + Decimal("2.50"),
            exit_price=copies[0].exit_price - Decimal("1.25"),
            exit_fee=copies[0].exit_fee + Decimal("0.10"),
        )
        early = replace(
            copies[2], entry_ns=copies[2].entry_ns - delay, entry_price=copies[2].entry_price - 1
        )
        # A short the backtest never made (the run is long only), inside the session.
        extra = replace(copies[3], long=False, exit_price=copies[3].entry_price - 3)
        dropped = ran[1]
        session = [injected, early, extra, *copies[3:]]
        await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=session_of(session)))

        async def summarized() -> bool:
            sessions = await live.stub.ListSessions(live_pb2.ListSessionsRequest())
            return any(s.run_id == SESSION for s in sessions.sessions)

        await eventually(summarized, message="session summarized")
        reply = await service.stub.CompareWithSession(
            pb.CompareWithSessionRequest(
                backtest=run.name,
                session=SESSION,
                max_entry_gap=Duration(seconds=gap // SECOND, nanos=gap % SECOND),
            )
        )

        # The wrong requests are refused, naming the field.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await service.stub.CompareWithSession(
                pb.CompareWithSessionRequest(backtest=run.name, session="")
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "session" in field_violations(refused.value)
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await service.stub.CompareWithSession(
                pb.CompareWithSessionRequest(backtest=run.name, session="NOBODY:1")
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    assert reply.currency == "USDT"
    # Plain decimal notation, never an exponent ("0E-12"), so every client reads the amounts.
    amounts = [
        getattr(reply.summary, f) for f in ("live_pnl", "pnl_gap", "slippage", "fees", "other")
    ]
    for m in reply.matched:
        amounts += [m.entry_slippage, m.exit_slippage, m.slippage_cost, m.fee_difference]
        amounts += [m.pnl_difference, m.live.realized_pnl, m.backtest.average_entry_price]
    assert all("E" not in a.upper() for a in amounts), amounts
    # Every trade but the dropped one is matched to itself; the short only exists live.
    assert [m.backtest.trade_id for m in reply.matched] == [
        t.trade_id for t in ran if t.trade_id != dropped.trade_id
    ]
    assert [t.trade_id for t in reply.backtest_only] == [dropped.trade_id]
    assert [(t.side, t.entry_time) for t in reply.live_only] == [
        (pb.TRADE_SIDE_SHORT, ran[3].entry_time)
    ]

    first, second = reply.matched[0], reply.matched[1]
    assert first.entry_delay.ToNanoseconds() == delay
    assert first.exit_delay.ToNanoseconds() == 2 * delay
    assert Decimal(first.entry_slippage) == Decimal("2.50")
    assert Decimal(first.exit_slippage) == Decimal("1.25")
    assert Decimal(first.slippage_cost) == Decimal("3.75") * Decimal(ran[0].quantity)
    assert Decimal(first.fee_difference) == Decimal("0.10")
    assert second.entry_delay.ToNanoseconds() == -delay
    assert Decimal(second.entry_slippage) == Decimal(-1)  # live bought cheaper: better
    for untouched in reply.matched[2:]:
        assert untouched.entry_delay.ToNanoseconds() == untouched.exit_delay.ToNanoseconds() == 0
        assert Decimal(untouched.slippage_cost) == Decimal(untouched.fee_difference) == 0

    summary = reply.summary
    assert (summary.matched_count, summary.live_only_count, summary.backtest_only_count) == (
        len(ran) - 1,
        1,
        1,
    )
    parts = [summary.missing_trades, summary.slippage, summary.fees, summary.other]
    assert sum(Decimal(p) for p in parts) == Decimal(summary.pnl_gap)
    assert Decimal(summary.pnl_gap) == Decimal(summary.live_pnl) - Decimal(summary.backtest_pnl)
    short = reply.live_only[0]
    assert Decimal(summary.missing_trades) == Decimal(short.realized_pnl) - Decimal(
        dropped.realized_pnl
    )
    costs = sum(Decimal(m.slippage_cost) for m in reply.matched)
    assert Decimal(summary.slippage) == -costs
    assert Decimal(summary.fees) == Decimal("-0.10")
    # The session's PnL is the price move less fees exactly; the run's is NautilusTrader's own,
    # rounded to the cent, so "other" is at most that rounding per matched trade.
    assert abs(Decimal(summary.other)) <= Decimal("0.01") * summary.matched_count


async def test_without_a_live_service_there_is_no_session_to_compare_with(
    database_url: str, data_dir: Path
):
    async with running_service(database_url, data_dir) as service:  # no live address
        dataset = await service.import_trades(rows=2000)
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        run = await service.wait(created.backtest.name)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await service.stub.CompareWithSession(
                pb.CompareWithSessionRequest(backtest=run.name, session=SESSION)
            )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "BACKTEST_LIVE_ADDRESS" in (refused.value.details() or "")
