"""The bridge Actor in a real BacktestEngine (a child process) against the real live service.

The engine trades the real Binance BTCUSDT trades: every 100 ticks a buy that fills, a buy
NautilusTrader's risk engine denies, a post-only order the venue rejects and a close. The live
service is stopped for the second half of the run; everything arrives once it is back.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

from tapedeck.live.v1 import live_pb2
from tapedeck_nautilus.queue import EventQueue
from tests.bridge.support import (
    EngineChild,
    drain,
    of_type,
    run_id,
    session_events,
    session_trades,
    spec,
)
from tests.live.support import running_live
from tests.support import eventually

POSITION_TYPES = {
    "PositionOpened": live_pb2.EVENT_TYPE_POSITION_OPENED,
    "PositionChanged": live_pb2.EVENT_TYPE_POSITION_CHANGED,
    "PositionClosed": live_pb2.EVENT_TYPE_POSITION_CLOSED,
}


def snapshot(queue_path: str, copy: Path) -> int:
    """Copy the queue file as it is (SQLite's backup: consistent with the WAL); return its size."""
    with sqlite3.connect(queue_path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
        (count,) = target.execute("SELECT count(*) FROM pending").fetchone()
    source.close()
    target.close()
    return int(count)


async def test_every_fill_denial_rejection_and_position_event_arrives_once_across_an_outage(
    database_url, data_dir, tmp_path
):
    async with running_live(database_url, data_dir) as live:
        port = live.app.port
        child_spec = spec(tmp_path, port=port, pause_at_tick=1000)
        session = run_id(child_spec)
        child = await EngineChild.start(child_spec, tmp_path)
        try:
            await child.expect("PAUSED")
            # The first half reaches the service while it is up.
            delivered = await eventually(
                lambda: session_events(live.stub, session), timeout=60, message="first half"
            )
        except BaseException:
            await child.kill()
            raise
    try:
        # Tapedeck is down for the second half: the engine runs on, its events wait on disk.
        child.resume()
        await child.expect("RAN")
        waiting = snapshot(child_spec["queue_path"], tmp_path / "snapshot.sqlite")
        assert waiting > 0
        async with running_live(database_url, data_dir, port=port) as live:
            seen = await child.result()
            stored = await session_events(live.stub, session)

            # A resend of everything that waited (a crash between send and delete) stores nothing.
            copy = EventQueue.shared(tmp_path / "snapshot.sqlite")
            sent_again = await asyncio.to_thread(drain, copy, f"127.0.0.1:{port}")
            copy.release()
            assert sent_again == waiting
            assert await session_events(live.stub, session) == stored

            # The live service's session: the bridge's run, summarized.
            async def summarized():
                reply = await live.stub.ListSessions(live_pb2.ListSessionsRequest())
                done = reply.summarized_sequence >= stored[-1].sequence
                return reply.sessions if done else None

            listed = await eventually(summarized, message="session summarized")
            trades = await session_trades(live.stub, session)
    finally:
        await child.kill()

    assert 0 < len(delivered) < len(stored)
    assert seen["left_in_queue"] == 0
    assert len({e.event_id for e in stored}) == len(stored)
    assert {e.run_id for e in stored} == {session}

    fills = of_type(stored, live_pb2.EVENT_TYPE_ORDER_FILLED)
    assert sorted(e.payload["trade_id"] for e in fills) == sorted(
        f["trade_id"] for f in seen["fills"]
    )
    assert len(fills) >= 20
    assert {e.symbol for e in fills} == {"BTCUSDT.BINANCE"}

    blocked = of_type(stored, live_pb2.EVENT_TYPE_TRADE_BLOCKED)
    assert sorted((e.payload["client_order_id"], e.payload["kind"]) for e in blocked) == sorted(
        (r["client_order_id"], r["kind"]) for r in seen["refused"]
    )
    reasons = collections.Counter(e.reason for e in blocked)
    # NautilusTrader's own codes: the risk engine's and the venue's.
    assert reasons == {"NOTIONAL_EXCEEDS_FREE_BALANCE": 20, "POST_ONLY": 20}
    denial = next(e for e in blocked if e.reason == "NOTIONAL_EXCEEDS_FREE_BALANCE")
    assert denial.payload["message"].startswith("NOTIONAL_EXCEEDS_FREE_BALANCE: free=")
    assert (denial.payload["side"], denial.payload["quantity"]) == ("BUY", "100.000000")

    positions = of_type(stored, *POSITION_TYPES.values())
    assert sorted((e.type, e.payload["nautilus_event_id"]) for e in positions) == sorted(
        (POSITION_TYPES[p["type"]], p["id"]) for p in seen["positions"]
    )
    closed = of_type(stored, live_pb2.EVENT_TYPE_POSITION_CLOSED)
    assert len(closed) == 20
    assert {e.payload["quantity"] for e in closed} == {"0"}

    accounts = of_type(stored, live_pb2.EVENT_TYPE_ACCOUNT_STATE)
    assert sorted(e.payload["nautilus_event_id"] for e in accounts) == seen["accounts"]
    balances = {b["currency"] for b in accounts[-1].payload["balances"]}
    assert balances == {"BTC", "USDT"}

    # Its round trips: one per closed position, as NautilusTrader closed them, with the fees of
    # their fills (NautilusTrader's realized PnL is the price move less those commissions).
    assert [
        (
            t.position_id,
            t.side == live_pb2.POSITION_SIDE_LONG,
            t.quantity,
            t.realized_pnl.amount,
            t.entry_time.ToNanoseconds(),
            t.exit_time.ToNanoseconds(),
        )
        for t in trades
    ] == [
        (
            c["position_id"],
            c["long"],
            c["peak_quantity"],
            c["realized_pnl"],
            c["ts_opened"],
            c["ts_closed"],
        )
        for c in reversed(seen["closed"])
    ]
    for trade in trades:
        direction = 1 if trade.side == live_pb2.POSITION_SIDE_LONG else -1
        move = Decimal(trade.average_exit_price) - Decimal(trade.average_entry_price)
        gross = direction * Decimal(trade.quantity) * move
        assert Decimal(trade.fees) > 0
        assert abs(gross - Decimal(trade.fees) - Decimal(trade.realized_pnl.amount)) <= Decimal(
            "0.01"
        )

    (summary,) = listed
    assert (summary.run_id, summary.trader_id, summary.event_count) == (
        session,
        "BRIDGE-001",
        len(stored),
    )
    assert list(summary.open_positions) == []  # every cycle closes its position
    realized = sum(Decimal(e.payload["realized_pnl"]["amount"]) for e in closed)
    assert [(m.currency, Decimal(m.amount)) for m in summary.realized_pnl] == [("USDT", realized)]

    # Every event the bridge queued was timed on the trading loop (bench/bridge reports the
    # distribution; no timing is asserted here).
    assert len(seen["handler_ns"]) >= len(stored)
    timings = sorted(seen["handler_ns"])
    print(
        json.dumps(
            {
                "nautilus_trader": seen["nautilus_trader"],
                "events": len(timings),
                "handler_p50_us": timings[len(timings) // 2] / 1000,
                "handler_max_us": timings[-1] / 1000,
            }
        )
    )
