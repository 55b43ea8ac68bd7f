"""AppendEvents through a real server: validation, idempotency, atomicity, on both databases."""

from __future__ import annotations

import grpc
import pytest

from tapedeck.live.v1 import live_pb2
from tests.live.support import block, event, running_live
from tests.support import field_violations


async def append(live, *events: live_pb2.Event) -> live_pb2.AppendEventsResponse:
    return await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=events))


async def all_events(live) -> list[live_pb2.Event]:
    reply = await live.stub.ListEvents(live_pb2.ListEventsRequest(page_size=1000))
    return list(reply.events)


async def test_append_stores_events_with_increasing_sequences_and_round_trips_fields(
    database_url, data_dir
):
    async with running_live(database_url, data_dir) as live:
        payload = {"price": "101.5", "filled": 2.0, "tags": ["a", "b"], "nested": {"ok": True}}
        first = event("fill-1", run_id="run-7", symbol="BTC-USD", at=1.000000001, payload=payload)
        reply = await append(live, first, block("block-1", reason="max_notional", at=2))

        assert reply.appended_count == 2
        assert reply.duplicate_count == 0
        assert reply.sequences[0] < reply.sequences[1]
        stored = {e.event_id: e for e in await all_events(live)}
        got = stored["fill-1"]
        assert got.run_id == "run-7"
        assert got.symbol == "BTC-USD"
        assert got.time == first.time  # nanoseconds survive
        assert got.payload == first.payload
        assert got.sequence == reply.sequences[0]
        assert stored["block-1"].reason == "max_notional"


async def test_duplicates_across_and_within_batches_are_counted_and_ignored(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        first = await append(live, event("a"), event("b"))
        second = await append(
            live, event("b", run_id="changed"), event("c"), event("c"), event("a")
        )

        assert (second.appended_count, second.duplicate_count) == (1, 3)
        b, c, c_again, a = second.sequences
        assert (a, b) == tuple(first.sequences)
        assert c == c_again
        assert c > max(first.sequences)
        events = await all_events(live)
        assert sorted(e.event_id for e in events) == ["a", "b", "c"]
        assert next(e for e in events if e.event_id == "b").run_id == ""  # first write wins


async def test_replaying_a_whole_batch_appends_nothing(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        batch = [event(f"e{i}", at=i) for i in range(50)]
        first = await append(live, *batch)
        again = await append(live, *batch)

        assert (again.appended_count, again.duplicate_count) == (0, 50)
        assert list(again.sequences) == list(first.sequences)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (live_pb2.Event(event_id="x", time=event("x").time), "events[1].type"),
        (live_pb2.Event(event_id="x", type=99, time=event("x").time), "events[1].type"),
        (live_pb2.Event(event_id="x", type=live_pb2.EVENT_TYPE_RUN_STARTED), "events[1].time"),
        (event(""), "events[1].event_id"),
        (event("has space"), "events[1].event_id"),
        (event("x" * 129), "events[1].event_id"),
        # Over 64 KiB as JSON, though no one string passes the 4,096-character field bound.
        (event("x", payload={f"k{i}": "y" * 1000 for i in range(70)}), "events[1].payload"),
        (
            live_pb2.Event(
                event_id="x", type=live_pb2.EVENT_TYPE_TRADE_BLOCKED, time=event("x").time
            ),
            "events[1].reason",
        ),
        (event("x", symbol="s" * 65), "events[1].symbol"),
        (event("x", payload={"price": float("nan")}), "events[1].payload"),
    ],
)
async def test_a_bad_event_refuses_the_whole_batch_naming_its_field(
    database_url, data_dir, bad, field
):
    async with running_live(database_url, data_dir) as live:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await append(live, event("good-0"), bad, event("good-2"))

        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(caught.value)
        assert field in caught.value.details()
        assert await all_events(live) == []


async def test_every_bad_event_of_a_batch_is_named(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        bad_time = live_pb2.Event(event_id="t", type=live_pb2.EVENT_TYPE_RUN_STARTED)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await append(live, event("ok"), bad_time, event("bad id"), event("ok2"))

        assert set(field_violations(caught.value)) == {"events[1].time", "events[2].event_id"}


async def test_empty_and_oversized_batches_are_refused(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        for events in ([], [event(f"e{i}") for i in range(10_001)]):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await append(live, *events)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "events" in field_violations(caught.value)


async def test_a_full_batch_of_ten_thousand_appends_in_one_call(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        events = [event(f"bulk-{i}", run_id=f"run-{i % 7}", at=i) for i in range(10_000)]
        reply = await append(live, *events)

        assert reply.appended_count == 10_000
        assert list(reply.sequences) == sorted(reply.sequences)
        assert len(set(reply.sequences)) == 10_000
