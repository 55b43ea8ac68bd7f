"""The gate in the order path: a real engine (child process) asks the real live service, which
asks the real wallet service; refusals become NautilusTrader's own OrderDenied.

The gated strategy buys every 100 ticks of the real trades, 0.01 BTC (about 394 USDT) and
0.001 BTC (about 39 USDT) in turn, through the TAPEDECK-GATE execution algorithm.
"""

from __future__ import annotations

from tapedeck.live.v1 import live_pb2
from tests.bridge.support import EngineChild, of_type, run_id, session_events, spec
from tests.live.support import running_live
from tests.live.test_check_order import OPERATOR_TOKEN, bearer, gate
from tests.support import free_port

QUANTITIES = ["0.01", "0.001"]


async def run_gated(tmp_path, port: int, **gate_settings) -> tuple[dict, dict]:
    child_spec = spec(tmp_path, port=port, quantities=QUANTITIES, gate=gate_settings)
    child = await EngineChild.start(child_spec, tmp_path, TAPEDECK_TOKEN=OPERATOR_TOKEN)
    try:
        return child_spec, await child.result()
    finally:
        await child.kill()


def by_quantity(seen: dict) -> dict[str, list[str]]:
    """Return the orders' final statuses per quantity ("0.010000": [...], "0.001000": [...])."""
    statuses: dict[str, list[str]] = {}
    for order in seen["orders"]:
        statuses.setdefault(order["quantity"], []).append(order["status"])
    return statuses


async def test_an_order_the_wallet_cannot_cover_is_denied_with_tapedecks_reason(
    database_url, data_dir, tmp_path
):
    async with gate(database_url, data_dir) as g:
        wallet = await g.wallet("desk", ("USDT", "100"), ("BTC", "0"))
        child_spec, seen = await run_gated(
            tmp_path, g.live.app.port, wallet=wallet, deadline_ms=5000
        )
        stored = await session_events(
            g.live.stub, run_id(child_spec), metadata=bearer(OPERATOR_TOKEN)
        )

    statuses = by_quantity(seen)
    assert set(statuses["0.010000"]) == {"DENIED"}
    assert set(statuses["0.001000"]) == {"FILLED"}
    refused = len(statuses["0.010000"])
    assert refused == 10
    # NautilusTrader's own denial, as the strategy saw it, with Tapedeck's reason.
    assert len(seen["denied_seen_by_strategy"]) == refused
    for denial in seen["denied_seen_by_strategy"]:
        assert denial["reason"].startswith(
            "TAPEDECK_INSUFFICIENT_FUNDS: available 100 USDT does not cover 39"
        )
    # Recorded once each, by the live service (the bridge leaves the gate's denials alone).
    blocked = of_type(stored, live_pb2.EVENT_TYPE_TRADE_BLOCKED)
    assert len(blocked) == refused
    assert {e.reason for e in blocked} == {"insufficient_funds"}
    assert {e.payload["client_order_id"] for e in blocked} == {
        d["client_order_id"] for d in seen["denied_seen_by_strategy"]
    }
    assert len(of_type(stored, live_pb2.EVENT_TYPE_ORDER_FILLED)) == len(seen["fills"]) >= 10


async def test_without_the_wallet_service_the_gate_fails_closed_and_records_each_denial(
    database_url, data_dir, tmp_path
):
    async with running_live(
        database_url, data_dir, wallets_address=f"127.0.0.1:{free_port()}"
    ) as live:
        child_spec, seen = await run_gated(
            tmp_path, live.app.port, wallet="wallets/desk", deadline_ms=5000
        )
        stored = await session_events(live.stub, run_id(child_spec))

    assert {o["status"] for o in seen["orders"]} == {"DENIED"}
    assert seen["fills"] == []
    assert len(seen["denied_seen_by_strategy"]) == len(seen["orders"]) == 20
    assert all(
        d["reason"].startswith(
            "TAPEDECK_GATE_UNAVAILABLE: Tapedeck could not check the order (UNAVAILABLE"
        )
        for d in seen["denied_seen_by_strategy"]
    )
    blocked = of_type(stored, live_pb2.EVENT_TYPE_TRADE_BLOCKED)
    assert len(blocked) == 20
    assert {(e.reason, e.payload["source"]) for e in blocked} == {
        ("gate_unavailable", "tapedeck_gate")
    }
    assert of_type(stored, live_pb2.EVENT_TYPE_ORDER_UNGATED) == []


async def test_without_the_wallet_service_a_gate_set_to_fail_open_passes_and_records_each_order(
    database_url, data_dir, tmp_path
):
    async with running_live(
        database_url, data_dir, wallets_address=f"127.0.0.1:{free_port()}"
    ) as live:
        child_spec, seen = await run_gated(
            tmp_path, live.app.port, wallet="wallets/desk", deadline_ms=5000, fail_open=True
        )
        stored = await session_events(live.stub, run_id(child_spec))

    assert {o["status"] for o in seen["orders"]} == {"FILLED"}
    assert seen["denied_seen_by_strategy"] == []
    ungated = of_type(stored, live_pb2.EVENT_TYPE_ORDER_UNGATED)
    assert sorted(e.payload["client_order_id"] for e in ungated) == sorted(
        o["client_order_id"] for o in seen["orders"]
    )
    assert {e.reason for e in ungated} == {"gate_unavailable"}
    assert of_type(stored, live_pb2.EVENT_TYPE_TRADE_BLOCKED) == []
