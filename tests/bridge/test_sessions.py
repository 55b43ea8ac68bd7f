"""Live sessions on the service side: events grouped by run_id, listed with counts, open
positions and realized PnL, through the real service (SQLite and PostgreSQL).

The events here are shaped as the bridge sends them (tapedeck_nautilus.events); the engine
test (test_bridge.py) checks a session built by the real bridge.
"""

from __future__ import annotations

import grpc
import pytest

from tapedeck.live.v1 import live_pb2
from tests.live.support import event, running_live
from tests.support import eventually, field_violations

INSTANCE = "0c6f6a52-5b5e-4c61-9c55-0d7e9d2b1c11"
SESSION = f"TRADER-001:{INSTANCE}"


def bridge_event(event_id: str, kind: int, at: float, **payload) -> live_pb2.Event:
    identity = {"trader_id": "TRADER-001", "instance_id": INSTANCE}
    return event(event_id, type=kind, run_id=SESSION, at=at, payload=identity | payload)


def position(event_id: str, kind: int, at: float, *, quantity: str, realized: str, pid: str):
    return bridge_event(
        event_id,
        kind,
        at,
        position_id=pid,
        instrument_id="BTCUSDT.BINANCE",
        strategy_id="EMA-001",
        quantity=quantity,
        average_open_price="40000.5",
        realized_pnl={"amount": realized, "currency": "USDT"},
        ts_opened="1767225600000000000",
    )


async def listed(stub, **request) -> live_pb2.ListSessionsResponse:
    return await stub.ListSessions(live_pb2.ListSessionsRequest(**request))


async def test_a_session_lists_its_counts_open_positions_and_realized_pnl(database_url, data_dir):
    opened, changed, closed = (
        live_pb2.EVENT_TYPE_POSITION_OPENED,
        live_pb2.EVENT_TYPE_POSITION_CHANGED,
        live_pb2.EVENT_TYPE_POSITION_CLOSED,
    )
    async with running_live(database_url, data_dir) as live:
        # The gate's refusal reaches the store before the bridge's first event: it still counts.
        await live.stub.AppendEvents(
            live_pb2.AppendEventsRequest(
                events=[
                    event(
                        "gate-1",
                        type=live_pb2.EVENT_TYPE_TRADE_BLOCKED,
                        run_id=SESSION,
                        reason="insufficient_funds",
                    )
                ]
            )
        )
        batch = [
            position("p1-open", opened, 1, quantity="0.5", realized="-2", pid="P-1"),
            position("p1-add", changed, 2, quantity="1.0", realized="-4", pid="P-1"),
            position("p1-close", closed, 3, quantity="0", realized="96", pid="P-1"),
            # A netting position reopens under the same id: its first opening's PnL stays.
            position("p1-again", opened, 4, quantity="-0.25", realized="-1", pid="P-1"),
            position("p2-open", opened, 5, quantity="2", realized="-3", pid="P-2"),
            bridge_event("fill-1", live_pb2.EVENT_TYPE_ORDER_FILLED, 6),
        ]
        appended = await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=batch))
        # A resend changes nothing.
        await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=batch))
        head = max(appended.sequences)

        async def summarized():
            reply = await listed(live.stub)
            return reply if reply.summarized_sequence >= head else None

        reply = await eventually(summarized, message="sessions summarized")

    (session,) = reply.sessions
    assert (session.run_id, session.trader_id, session.instance_id) == (
        SESSION,
        "TRADER-001",
        INSTANCE,
    )
    assert session.event_count == 7
    assert {(c.type, c.count) for c in session.type_counts} == {
        (live_pb2.EVENT_TYPE_POSITION_OPENED, 3),
        (live_pb2.EVENT_TYPE_POSITION_CHANGED, 1),
        (live_pb2.EVENT_TYPE_POSITION_CLOSED, 1),
        (live_pb2.EVENT_TYPE_TRADE_BLOCKED, 1),
        (live_pb2.EVENT_TYPE_ORDER_FILLED, 1),
    }
    assert [(p.position_id, p.quantity, p.realized_pnl.amount) for p in session.open_positions] == [
        ("P-1", "-0.25", "-1"),
        ("P-2", "2", "-3"),
    ]
    assert [(m.currency, m.amount) for m in session.realized_pnl] == [("USDT", "92")]
    assert session.last_time.ToNanoseconds() - session.start_time.ToNanoseconds() == 6 * 10**9


async def test_sessions_page_newest_first_and_filter_by_trader(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        sequences = []
        for index, trader in enumerate(["A-001", "B-001", "A-001"]):
            run = f"{trader}:instance-{index}"
            reply = await live.stub.AppendEvents(
                live_pb2.AppendEventsRequest(
                    events=[
                        event(
                            f"e-{index}",
                            run_id=run,
                            payload={"trader_id": trader, "instance_id": f"instance-{index}"},
                        ),
                        # A backtest's events have a run_id but no trader: not a session.
                        event(
                            f"backtest-{index}",
                            type=live_pb2.EVENT_TYPE_RUN_STARTED,
                            run_id=f"run-{index}",
                        ),
                    ]
                )
            )
            sequences.extend(reply.sequences)

        async def summarized():
            reply = await listed(live.stub)
            return reply if reply.summarized_sequence >= max(sequences) else None

        await eventually(summarized, message="sessions summarized")
        first = await listed(live.stub, page_size=2)
        second = await listed(live.stub, page_size=2, page_token=first.next_page_token)
        only_a = await listed(live.stub, trader_id="A-001")
        with pytest.raises(grpc.aio.AioRpcError) as too_long:
            await listed(live.stub, trader_id="T" * 129)

    assert [s.run_id for s in first.sessions] == ["A-001:instance-2", "B-001:instance-1"]
    assert [s.run_id for s in second.sessions] == ["A-001:instance-0"]
    assert second.next_page_token == ""
    assert [s.run_id for s in only_a.sessions] == ["A-001:instance-2", "A-001:instance-0"]
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(too_long.value)) == ["trader_id"]
