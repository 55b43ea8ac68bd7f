"""SIGTERM to the launcher under load: unary calls finish, streams end UNAVAILABLE through Envoy
(not reset), and a subscriber resuming from its cursor on the restarted stack misses nothing."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.interceptors import SHUTDOWN_RETRY_SECONDS, SHUTTING_DOWN
from tests.gateway.stack import Stack, start_stack
from tests.live.support import event
from tests.support import retry_delay

SUBSCRIBERS = 10
UNARY = 40


async def subscribe_until_end(
    stub: live_pb2_grpc.LiveServiceStub, metadata: tuple[tuple[str, str], ...], cursor: list[int]
) -> tuple[list[str], grpc.aio.AioRpcError]:
    received: list[str] = []
    call = stub.SubscribeEvents(live_pb2.SubscribeEventsRequest(), metadata=metadata)
    try:
        async for message in call:
            received.extend(e.event_id for e in message.events)
            cursor[0] = message.cursor
    except grpc.aio.AioRpcError as error:
        return received, error
    raise AssertionError("the stream ended without a status")


async def load_then_sigterm(stack: Stack) -> tuple[list, list, list[int]]:
    metadata = (("authorization", f"Bearer {stack.admin_token()}"),)
    cursors = [[0] for _ in range(SUBSCRIBERS)]
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = live_pb2_grpc.LiveServiceStub(channel)
        streams = [
            asyncio.create_task(subscribe_until_end(stub, metadata, cursors[i]))
            for i in range(SUBSCRIBERS)
        ]
        for batch in range(10):
            await stub.AppendEvents(
                live_pb2.AppendEventsRequest(events=[event(f"a-{batch}-{i}") for i in range(20)]),
                metadata=metadata,
            )
        await asyncio.sleep(0.5)  # every subscriber is live
        # Unary calls in flight when the signal arrives (each sent before it).
        unary = [
            asyncio.ensure_future(
                stub.AppendEvents(
                    live_pb2.AppendEventsRequest(events=[event(f"late-{i}")]), metadata=metadata
                )
                if i % 2
                else stub.ListEvents(live_pb2.ListEventsRequest(page_size=100), metadata=metadata)
            )
            for i in range(UNARY)
        ]
        await asyncio.sleep(0.02)
        stack.process.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(*unary, return_exceptions=True)
        endings = await asyncio.wait_for(asyncio.gather(*streams), timeout=30)
    return answers, endings, [c[0] for c in cursors]


def test_sigterm_under_load_drains_then_streams_resume_from_their_cursor(tmp_path: Path) -> None:
    stack = start_stack(tmp_path)
    try:
        answers, endings, cursors = asyncio.run(load_then_sigterm(stack))
        assert stack.process.wait(timeout=60) == 0
    finally:
        stack.stop()

    failed = [a for a in answers if isinstance(a, BaseException)]
    assert not failed, failed
    codes = [error.code() for _, error in endings]
    assert codes == [grpc.StatusCode.UNAVAILABLE] * SUBSCRIBERS, [e for _, e in endings]
    assert {error.details() for _, error in endings} == {SHUTTING_DOWN}
    assert {retry_delay(error) for _, error in endings} == {SHUTDOWN_RETRY_SECONDS}

    late = {f"late-{i}" for i in range(1, UNARY, 2)}
    expected = [f"a-{b}-{i}" for b in range(10) for i in range(20)]
    restarted = start_stack(tmp_path)
    try:

        async def resume() -> list[list[str]]:
            metadata = (("authorization", f"Bearer {restarted.admin_token()}"),)
            async with grpc.aio.insecure_channel(restarted.address) as channel:
                stub = live_pb2_grpc.LiveServiceStub(channel)
                got: list[list[str]] = []
                for (received, _), cursor in zip(endings, cursors, strict=True):
                    call = stub.SubscribeEvents(
                        live_pb2.SubscribeEventsRequest(after_sequence=cursor), metadata=metadata
                    )
                    ids = list(received)
                    while not late <= set(ids):
                        message = await asyncio.wait_for(call.read(), timeout=20)
                        assert message is not grpc.aio.EOF
                        ids.extend(e.event_id for e in message.events)
                    call.cancel()
                    got.append(ids)
                return got

        resumed = asyncio.run(resume())
    finally:
        restarted.stop()

    for ids in resumed:
        assert ids[: len(expected)] == expected
        assert sorted(ids[len(expected) :]) == sorted(late)
