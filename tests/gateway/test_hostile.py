"""Hostile input through the real gateway: bounded errors, auth before decoding, no collateral."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck.common.v1 import common_pb2
from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_common.limits import MAX_VIOLATIONS
from tests.gateway import hostile
from tests.gateway.stack import Stack, start_stack
from tests.support import field_violations


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("hostile"))
    yield running
    running.stop()


def _metadata(stack: Stack) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {stack.admin_token()}"),)


async def test_huge_names_and_filters_are_refused_briefly_without_hurting_a_shared_stream(
    stack: Stack,
) -> None:
    metadata = _metadata(stack)
    async with grpc.aio.insecure_channel(stack.address) as channel:
        live = live_pb2_grpc.LiveServiceStub(channel)
        wallets = wallets_pb2_grpc.WalletServiceStub(channel)
        stream = live.SubscribeEvents(live_pb2.SubscribeEventsRequest(), metadata=metadata)
        await stream.wait_for_connection()

        with pytest.raises(grpc.aio.AioRpcError) as named:
            await wallets.GetWallet(
                wallets_pb2.GetWalletRequest(name="wallets/" + "a" * 70_000),
                metadata=metadata,
                timeout=10,
            )
        assert named.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(named.value) == {"name": "is longer than 4096 characters"}

        with pytest.raises(grpc.aio.AioRpcError) as filtered:
            await live.ListEvents(
                live_pb2.ListEventsRequest(filter=live_pb2.EventFilter(types=[999] * 10_000)),
                metadata=metadata,
                timeout=10,
            )
        assert filtered.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(field_violations(filtered.value)) <= MAX_VIOLATIONS
        assert len(filtered.value.details() or "") < 4096

        # The stream on the same connection is still open and the connection still serves.
        assert not stream.done()
        listed = await wallets.ListWallets(
            wallets_pb2.ListWalletsRequest(), metadata=metadata, timeout=10
        )
        assert listed is not None
        stream.cancel()


async def test_a_garbage_body_without_a_token_is_unauthenticated_and_with_one_invalid(
    stack: Stack,
) -> None:
    path = "/tapedeck.wallets.v1.WalletService/GetWallet"
    garbage = b"\x0a\xff\xff\xff\xff\x0f"
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = channel.unary_unary(path)
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await call(garbage, timeout=10)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as authenticated:
            await call(garbage, metadata=_metadata(stack), timeout=10)
    assert authenticated.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(authenticated.value) == {
        "request": "body could not be decoded as the method's message"
    }
    assert "Traceback" not in stack.log()


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (
            live_pb2.ListEventsRequest(
                filter=live_pb2.EventFilter(
                    time_range=common_pb2.TimeRange(start_time=Timestamp(seconds=9_300_000_000))
                )
            ),
            "filter.time_range.start_time",
        ),
        (
            live_pb2.CheckOrderRequest(
                wallet="wallets/w1", symbol="BTCUSDT", quantity="1", price="1E+999999999"
            ),
            "price",
        ),
    ],
)
async def test_out_of_range_values_are_invalid_naming_the_field(
    stack: Stack, request_message: object, field: str
) -> None:
    method = type(request_message).__name__.removesuffix("Request")
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = live_pb2_grpc.LiveServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await getattr(stub, method)(request_message, metadata=_metadata(stack), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)


async def test_reconcile_with_a_huge_threshold_or_cache_age_is_invalid(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = wallets_pb2_grpc.WalletServiceStub(channel)
        for request, field in (
            (wallets_pb2.ReconcileWalletsRequest(threshold="1E+999999999"), "threshold"),
            (wallets_pb2.ReconcileWalletsRequest(threshold="1" * 1_000_000), "threshold"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ReconcileWallets(request, metadata=_metadata(stack), timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in field_violations(refused.value)
        aged = wallets_pb2.ReconcileWalletsRequest()
        aged.max_cache_age.seconds = 2**63 - 1
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ReconcileWallets(aged, metadata=_metadata(stack), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_cache_age" in field_violations(refused.value)


async def test_an_oversized_request_is_resource_exhausted_and_the_connection_survives(
    stack: Stack,
) -> None:
    metadata = _metadata(stack)
    async with grpc.aio.insecure_channel(
        stack.address, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
    ) as channel:
        stub = wallets_pb2_grpc.WalletServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetWallet(
                wallets_pb2.GetWalletRequest(name="a" * (5 * 1024 * 1024)),
                metadata=metadata,
                timeout=30,
            )
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await stub.ListWallets(wallets_pb2.ListWalletsRequest(), metadata=metadata)


async def test_generated_requests_over_every_rpc_get_no_internal_unknown_hang_or_collateral(
    stack: Stack,
) -> None:
    outcome = await hostile.run(
        stack.address,
        stack.admin_token(),
        services=tuple(hostile.CONTRACT),
        per_service=120,
        seed=14,
    )
    assert outcome.sent >= 360
    assert outcome.failures == [], outcome.codes
    assert outcome.collateral == []
    assert "Traceback" not in stack.log()


async def test_a_client_deadline_on_a_stream_through_the_gateway_ends_deadline_exceeded(
    stack: Stack,
) -> None:
    # Envoy must never race the client's own timer with a reset of its own (seen as INTERNAL).
    metadata = _metadata(stack)
    codes: list[grpc.StatusCode] = []
    async with grpc.aio.insecure_channel(stack.address) as channel:
        live = live_pb2_grpc.LiveServiceStub(channel)

        async def subscribe(timeout: float) -> None:
            stream = live.SubscribeEvents(
                live_pb2.SubscribeEventsRequest(tail_only=True), metadata=metadata, timeout=timeout
            )
            try:
                async for _ in stream:
                    pass
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
            else:
                codes.append(grpc.StatusCode.OK)

        await asyncio.gather(*(subscribe(0.2 + 0.01 * i) for i in range(60)))
    assert collections.Counter(codes) == {grpc.StatusCode.DEADLINE_EXCEEDED: 60}
