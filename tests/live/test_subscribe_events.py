"""SubscribeEvents: backlog, live tail, filters, heartbeats, slow subscribers, replicas."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from tapedeck.common.v1 import common_pb2
from tapedeck.live.v1 import live_pb2
from tapedeck_live.notifier import LISTENER_APPLICATION
from tests.live.support import block, event, running_live, timestamp
from tests.support import eventually, postgres_database


async def append(live, *events: live_pb2.Event) -> live_pb2.AppendEventsResponse:
    return await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=events))


async def collect(call, count: int, *, delay: float = 0.0) -> list[live_pb2.Event]:
    """Read until `count` events arrived, sleeping `delay` after each message (a slow reader)."""
    events: list[live_pb2.Event] = []
    while len(events) < count:
        message = await asyncio.wait_for(call.read(), timeout=20)
        assert message is not grpc.aio.EOF, "stream ended"
        events.extend(message.events)
        if delay:
            await asyncio.sleep(delay)
    return events


async def test_backlog_after_the_cursor_then_the_live_tail_each_once_in_order(
    database_url, data_dir
):
    async with running_live(database_url, data_dir) as live:
        first = await append(live, *(event(f"old-{i}") for i in range(5)))
        call = live.stub.SubscribeEvents(
            live_pb2.SubscribeEventsRequest(after_sequence=first.sequences[1])
        )
        backlog = await collect(call, 3)
        await append(live, event("new-0"), event("old-0"), event("new-1"))
        tail = await collect(call, 2)
        call.cancel()

        assert [e.event_id for e in backlog] == ["old-2", "old-3", "old-4"]
        assert [e.event_id for e in tail] == ["new-0", "new-1"]
        sequences = [e.sequence for e in backlog + tail]
        assert sequences == sorted(sequences)


async def test_a_filtered_subscription_sees_only_matches_and_its_cursor_passes_the_rest(
    database_url, data_dir
):
    async with running_live(database_url, data_dir, heartbeat_seconds=0.2) as live:
        call = live.stub.SubscribeEvents(
            live_pb2.SubscribeEventsRequest(
                filter=live_pb2.EventFilter(
                    types=[live_pb2.EVENT_TYPE_TRADE_BLOCKED], run_id="run-1"
                )
            )
        )
        await call.read()  # the stream is live
        reply = await append(
            live,
            block("b-1", reason="max_notional", run_id="run-1"),
            block("b-2", reason="max_notional", run_id="run-2"),
            event("f-1", run_id="run-1"),
            block("b-3", reason="stale_balance", run_id="run-1"),
            event("f-2", run_id="run-1"),
        )
        got = await collect(call, 2)
        assert [e.event_id for e in got] == ["b-1", "b-3"]

        async def cursor_passed_everything() -> bool:
            message = await call.read()
            return message.cursor == max(reply.sequences)

        await eventually(cursor_passed_everything, message="heartbeat cursor at the head")
        call.cancel()


async def test_tail_only_skips_the_backlog(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        await append(live, event("before"))
        call = live.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest(tail_only=True))
        opening = await call.read()
        assert list(opening.events) == []
        await append(live, event("after"))
        got = await collect(call, 1)
        call.cancel()

        assert [e.event_id for e in got] == ["after"]


async def test_an_idle_subscription_gets_heartbeats_with_its_cursor(database_url, data_dir):
    async with running_live(database_url, data_dir, heartbeat_seconds=0.1) as live:
        reply = await append(live, event("only"))
        call = live.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest())
        await collect(call, 1)
        heartbeats = [await asyncio.wait_for(call.read(), timeout=5) for _ in range(3)]
        call.cancel()

        assert all(list(h.events) == [] for h in heartbeats)
        assert all(h.cursor == reply.sequences[0] for h in heartbeats)


async def test_a_burst_to_a_slow_subscriber_arrives_whole_in_order_once(database_url, data_dir):
    async with running_live(database_url, data_dir, subscribe_batch_size=250) as live:
        call = live.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest())
        await call.read()
        reader = asyncio.create_task(collect(call, 10_000, delay=0.02))
        for start in range(0, 10_000, 1000):
            await append(live, *(event(f"burst-{i:05d}") for i in range(start, start + 1000)))
        got = await reader
        call.cancel()

        assert [e.event_id for e in got] == [f"burst-{i:05d}" for i in range(10_000)]


async def test_concurrent_appenders_never_let_a_subscriber_skip_a_late_commit(
    database_url, data_dir
):
    writers, batches, size = 4, 15, 20
    async with running_live(database_url, data_dir) as live:
        call = live.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest())
        await call.read()
        reader = asyncio.create_task(collect(call, writers * batches * size))

        async def writer(w: int) -> None:
            for b in range(batches):
                await append(live, *(event(f"w{w}-b{b}-{i}") for i in range(size)))

        await asyncio.gather(*(writer(w) for w in range(writers)))
        got = await reader
        call.cancel()

        ids = [e.event_id for e in got]
        assert len(ids) == len(set(ids)) == writers * batches * size
        assert [e.sequence for e in got] == sorted(e.sequence for e in got)


@pytest.mark.postgres
async def test_a_replica_wakes_through_listen_notify_and_after_losing_its_listener(tmp_path):
    async with postgres_database() as url:
        slow_poll = {"heartbeat_seconds": 60.0, "listener_retry_seconds": 0.1}
        async with (
            running_live(url, tmp_path / "a", **slow_poll) as writer,
            running_live(url, tmp_path / "b", **slow_poll) as reader,
        ):
            call = reader.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest())
            await call.read()
            await append(writer, event("through-notify"))
            assert [e.event_id for e in await collect(call, 1)] == ["through-notify"]

            dsn = url.replace("postgresql+asyncpg://", "postgresql://")
            admin = await asyncpg.connect(dsn)
            try:
                database = dsn.rsplit("/", 1)[1]
                listeners = """SELECT pid FROM pg_stat_activity
                               WHERE application_name = $1 AND datname = $2"""
                before = {
                    r["pid"] for r in await admin.fetch(listeners, LISTENER_APPLICATION, database)
                }
                assert len(before) == 2
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(before)
                )

                async def listening_again() -> bool:
                    now = {
                        r["pid"]
                        for r in await admin.fetch(listeners, LISTENER_APPLICATION, database)
                    }
                    return len(now) == 2 and not now & before

                await eventually(listening_again, message="listeners reconnected")
            finally:
                await admin.close()
            await append(writer, event("after-reconnect"))
            assert [e.event_id for e in await collect(call, 1)] == ["after-reconnect"]
            call.cancel()


async def test_a_subscriber_that_drops_resumes_from_its_cursor_without_gaps_or_repeats(
    database_url, data_dir
):
    async with running_live(database_url, data_dir, subscribe_batch_size=100) as live:
        await append(live, *(event(f"e-{i:04d}", run_id=f"r{i % 2}") for i in range(1000)))
        request = live_pb2.SubscribeEventsRequest(filter=live_pb2.EventFilter(run_id="r1"))
        got: list[live_pb2.Event] = []
        cursor = 0
        for _ in range(3):  # read a little, drop the stream, resume from the last cursor
            request.after_sequence = cursor
            call = live.stub.SubscribeEvents(request)
            message = await call.read()
            got.extend(message.events)
            cursor = message.cursor
            call.cancel()
        request.after_sequence = cursor
        call = live.stub.SubscribeEvents(request)
        got.extend(await collect(call, 500 - len(got)))
        call.cancel()

        assert [e.event_id for e in got] == [f"e-{i:04d}" for i in range(1, 1000, 2)]


async def test_many_subscribers_on_a_small_pool_all_receive_and_appends_still_get_through(
    database_url, data_dir
):
    small_pool = {"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout_seconds": 5}
    async with running_live(database_url, data_dir, **small_pool) as live:
        calls = [live.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest()) for _ in range(40)]
        for call in calls:
            await call.read()
        for round_ in range(5):
            await append(live, *(event(f"r{round_}-{i}") for i in range(20)))
        received = await asyncio.gather(*(collect(call, 100) for call in calls))
        for call in calls:
            call.cancel()

        expected = [f"r{r}-{i}" for r in range(5) for i in range(20)]
        assert all([e.event_id for e in got] == expected for got in received)


async def test_fifty_subscribers_with_different_filters_each_get_their_events_once_in_order(
    database_url, data_dir
):
    runs, symbols = [f"run-{r}" for r in range(5)], ["BTC-USD", "ETH-USD"]
    filled, blocked = live_pb2.EVENT_TYPE_ORDER_FILLED, live_pb2.EVENT_TYPE_TRADE_BLOCKED
    filters = [
        live_pb2.EventFilter(
            types=[[filled], [blocked], [filled, blocked], []][n % 4],
            run_id=runs[n % 5] if n % 3 else "",
            symbol=symbols[n % 2] if n % 7 == 0 else "",
            # Half the subscribers take a time window: seconds 20-80 of the 100 appended.
            time_range=common_pb2.TimeRange(start_time=timestamp(20), end_time=timestamp(80))
            if n % 2
            else None,
        )
        for n in range(50)
    ]
    appended = [
        (
            block(f"e-{i:03d}", reason="max_notional", **fields)
            if i % 3 == 0
            else event(f"e-{i:03d}", **fields)
        )
        for i in range(300)
        for fields in [{"run_id": runs[i % 5], "symbol": symbols[i % 2], "at": i / 3}]
    ]

    def wanted(subscription: live_pb2.EventFilter, candidate: live_pb2.Event) -> bool:
        at = candidate.time.ToNanoseconds()
        window = subscription.HasField("time_range")
        return (
            (not subscription.types or candidate.type in subscription.types)
            and subscription.run_id in ("", candidate.run_id)
            and subscription.symbol in ("", candidate.symbol)
            and (not window or subscription.time_range.start_time.ToNanoseconds() <= at)
            and (not window or at < subscription.time_range.end_time.ToNanoseconds())
        )

    async with running_live(database_url, data_dir) as live:
        calls = [
            live.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest(filter=f)) for f in filters
        ]
        for call in calls:
            await call.read()  # every stream is live before the first append
        for start in range(0, 300, 30):
            await append(live, *appended[start : start + 30])
        expected = [[e.event_id for e in appended if wanted(f, e)] for f in filters]
        received = await asyncio.gather(
            *(collect(call, len(ids)) for call, ids in zip(calls, expected, strict=True))
        )
        for call in calls:
            call.cancel()

        assert all(len(ids) > 0 for ids in expected)
        assert len({tuple(ids) for ids in expected}) > 20
        for got, ids in zip(received, expected, strict=True):
            assert [e.event_id for e in got] == ids
