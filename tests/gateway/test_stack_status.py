"""GetStackStatus on the real front service, reading a real live service's metrics."""

from __future__ import annotations

import grpc
import pytest

from tapedeck.live.v1 import live_pb2
from tapedeck.stack.v1 import stack_pb2, stack_pb2_grpc
from tapedeck_gateway.front import start_front
from tapedeck_gateway.settings import FrontSettings
from tapedeck_gateway.stack_status import quantile
from tests.live.support import running_live
from tests.live.test_check_order import order
from tests.support import eventually, free_port


def test_the_p99_is_read_from_the_buckets_as_prometheus_does() -> None:
    before = {0.01: 10.0, 0.1: 10.0, 1.0: 10.0, float("inf"): 10.0}
    # 100 calls since: 90 under 10 ms, 10 between 0.1 s and 1 s.
    after = {0.01: 100.0, 0.1: 100.0, 1.0: 110.0, float("inf"): 110.0}
    assert quantile(0.5, before, after) == pytest.approx(0.01 * 50 / 90)
    assert quantile(0.99, before, after) == pytest.approx(0.1 + 0.9 * 9 / 10)
    assert quantile(0.99, after, after) == 0.0


async def test_the_stack_status_shows_the_live_service_s_traffic_and_errors(database_url, data_dir):
    metrics_port = free_port()
    nobody = free_port()  # the wallet service is down: CheckOrder answers UNAVAILABLE
    async with running_live(
        database_url,
        data_dir,
        metrics_port=metrics_port,
        wallets_address=f"127.0.0.1:{nobody}",
        wallets_timeout_seconds=0.5,
    ) as live:
        front = await start_front(
            FrontSettings(
                port=0,
                live_address=f"127.0.0.1:{live.app.port}",
                live_metrics_address=f"127.0.0.1:{metrics_port}",
                stack_status_seconds=0.2,
            )
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{front.port}") as channel:
                stack = stack_pb2_grpc.StackServiceStub(channel)

                async def traffic() -> stack_pb2.ServiceStatus | None:
                    for _ in range(5):
                        await live.stub.ListBlocks(live_pb2.ListBlocksRequest())
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await live.stub.CheckOrder(order())
                    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                    reply = await stack.GetStackStatus(stack_pb2.GetStackStatusRequest())
                    (status,) = [s for s in reply.services if s.service == "live"]
                    seen = status.serving and status.request_rate > 0 and status.error_ratio > 0
                    return status if seen else None

                status = await eventually(traffic, timeout=30, message="live's traffic shown")
        finally:
            await front.stop()

    assert status.metrics_error == ""
    assert 0 < status.error_ratio < 1
    assert status.p99_latency_seconds > 0
