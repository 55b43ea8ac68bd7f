"""Metrics and request ids on real services: calls move the counters of their method and status
code, and one id follows a CheckOrder from the live service into the wallet service's logs."""

from __future__ import annotations

import grpc
import pytest

from tapedeck.live.v1 import live_pb2
from tests.live.support import running_live
from tests.live.test_check_order import OPERATOR_TOKEN, bearer, gate, order
from tests.observability.support import access_lines, json_log_lines, scrape
from tests.support import free_port

LIVE = "tapedeck.live.v1.LiveService"
WALLETS = "tapedeck.wallets.v1.WalletService"


def calls(samples: dict, method: str, code: str) -> float:
    key = frozenset({"service": LIVE, "method": method, "code": code}.items())
    return samples.get(("tapedeck_rpc_duration_seconds_count", key), 0.0)


async def test_calls_count_under_their_method_and_status_code(database_url, data_dir):
    port = free_port()
    async with running_live(database_url, data_dir, metrics_port=port) as live:
        before = scrape(port)
        for _ in range(3):
            await live.stub.ListBlocks(live_pb2.ListBlocksRequest())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.ListBlocks(live_pb2.ListBlocksRequest(page_size=-1))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        after = scrape(port)

    assert calls(after, "ListBlocks", "OK") - calls(before, "ListBlocks", "OK") == 3
    assert (
        calls(after, "ListBlocks", "INVALID_ARGUMENT")
        - calls(before, "ListBlocks", "INVALID_ARGUMENT")
        == 1
    )
    ok = frozenset({"service": LIVE, "method": "ListBlocks", "code": "OK"}.items())
    under_ten_seconds = frozenset({*ok, ("le", "10.0")})
    assert after[("tapedeck_rpc_duration_seconds_bucket", under_ten_seconds)] >= 3
    assert after[("tapedeck_rpc_duration_seconds_sum", ok)] > before.get(
        ("tapedeck_rpc_duration_seconds_sum", ok), 0.0
    )
    idle = frozenset({"service": LIVE, "method": "ListBlocks"}.items())
    assert after[("tapedeck_rpc_in_flight_calls", idle)] == 0
    assert ("tapedeck_db_pool_connections_in_use", frozenset()) in after


async def test_the_request_id_of_a_check_order_is_in_the_live_and_wallet_logs(
    database_url, data_dir, monkeypatch
):
    monkeypatch.setenv("TAPEDECK_ACCESS_LOG", "true")
    async with gate(database_url, data_dir) as g:
        wallet = await g.wallet("desk", ("USD", "10000"))
        with json_log_lines() as stream:
            reply = await g.live.stub.CheckOrder(
                order(wallet=wallet),
                metadata=(
                    *bearer(OPERATOR_TOKEN),
                    ("x-request-id", "b1f6c0de-0000-4000-8000-00000000cafe"),
                ),
            )
            await g.check(order(wallet=wallet))
        assert reply.allowed

    lines = access_lines(stream)
    by_id: dict[str, list[str]] = {}
    for line in lines:
        by_id.setdefault(line["request_id"], []).append(line["rpc"])
    given = by_id.pop("b1f6c0de-0000-4000-8000-00000000cafe")
    assert sorted(given) == [f"{LIVE}/CheckOrder", f"{WALLETS}/GetWallet"]
    # A direct call without an id gets a new one, and it travels on the same way.
    [(made, rpcs)] = by_id.items()
    assert len(made) == 32
    assert sorted(rpcs) == [f"{LIVE}/CheckOrder", f"{WALLETS}/GetWallet"]
    assert all(line["code"] == "OK" for line in lines)
