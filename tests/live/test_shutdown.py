"""SIGTERM to the live service: unary calls finish, subscriptions end UNAVAILABLE and resume."""

from __future__ import annotations

import asyncio

import grpc

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.interceptors import SHUTDOWN_RETRY_SECONDS, SHUTTING_DOWN
from tests.live.support import event, live_process
from tests.support import retry_delay

SUBSCRIBERS = 5


async def test_sigterm_ends_every_subscription_unavailable_and_a_resume_misses_nothing(tmp_path):
    database = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    received: list[list[str]] = [[] for _ in range(SUBSCRIBERS)]
    cursors = [0] * SUBSCRIBERS
    async with (
        live_process(database, tmp_path / "first") as first,
        grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel,
    ):
        stub = live_pb2_grpc.LiveServiceStub(channel)

        async def follow(index: int) -> grpc.aio.AioRpcError:
            call = stub.SubscribeEvents(live_pb2.SubscribeEventsRequest())
            try:
                async for message in call:
                    received[index].extend(e.event_id for e in message.events)
                    cursors[index] = message.cursor
            except grpc.aio.AioRpcError as error:
                return error
            raise AssertionError("the stream ended without a status")

        followers = [asyncio.create_task(follow(i)) for i in range(SUBSCRIBERS)]
        for batch in range(10):
            await stub.AppendEvents(
                live_pb2.AppendEventsRequest(events=[event(f"a-{batch}-{i}") for i in range(20)])
            )
        # Calls in flight when the signal arrives.
        appends = [
            asyncio.ensure_future(
                stub.AppendEvents(live_pb2.AppendEventsRequest(events=[event(f"late-{i}")]))
            )
            for i in range(10)
        ]
        await asyncio.sleep(0.05)
        first.process.terminate()
        endings = await asyncio.wait_for(asyncio.gather(*followers), timeout=15)
        late = await asyncio.gather(*appends, return_exceptions=True)

    assert all(e.code() == grpc.StatusCode.UNAVAILABLE for e in endings), endings
    assert all(e.details() == SHUTTING_DOWN for e in endings)
    assert all(retry_delay(e) == SHUTDOWN_RETRY_SECONDS for e in endings)
    assert not [r for r in late if isinstance(r, BaseException)]
    expected = [f"a-{b}-{i}" for b in range(10) for i in range(20)]
    after_cursor = [f"late-{i}" for i in range(10)] + [f"after-{i}" for i in range(5)]

    async with (
        live_process(database, tmp_path / "second") as second,
        grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel,
    ):
        stub = live_pb2_grpc.LiveServiceStub(channel)
        await stub.AppendEvents(
            live_pb2.AppendEventsRequest(events=[event(f"after-{i}") for i in range(5)])
        )
        for index in range(SUBSCRIBERS):
            resumed = stub.SubscribeEvents(
                live_pb2.SubscribeEventsRequest(after_sequence=cursors[index])
            )
            while len(received[index]) < len(expected) + len(after_cursor):
                message = await asyncio.wait_for(resumed.read(), timeout=10)
                assert message is not grpc.aio.EOF
                received[index].extend(e.event_id for e in message.events)
            resumed.cancel()

    for got in received:
        assert got[: len(expected)] == expected
        assert sorted(got[len(expected) :]) == sorted(after_cursor)
