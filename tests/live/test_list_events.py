"""ListEvents and ListBlocks: every filter in SQL, keyset pages, counts per reason."""

from __future__ import annotations

import itertools
from collections import Counter

import grpc
import pytest

from tapedeck.common.v1 import common_pb2
from tapedeck.live.v1 import live_pb2
from tests.live.support import event, running_live, timestamp
from tests.support import field_violations

TYPES = [
    live_pb2.EVENT_TYPE_ORDER_FILLED,
    live_pb2.EVENT_TYPE_TRADE_BLOCKED,
    live_pb2.EVENT_TYPE_RUN_STARTED,
    live_pb2.EVENT_TYPE_RECONCILIATION_MISMATCH,
]
REASONS = ["insufficient_funds", "max_notional", "stale_balance"]


def dataset(count: int = 240) -> list[live_pb2.Event]:
    events = []
    for i in range(count):
        kind = TYPES[i % len(TYPES)]
        reason = REASONS[(i // 4) % 3] if kind == live_pb2.EVENT_TYPE_TRADE_BLOCKED else ""
        if i % 11 == 0 and kind == live_pb2.EVENT_TYPE_RUN_STARTED:
            reason = "max_notional"  # a reason on another type must not leak into blocks
        events.append(
            event(
                f"ev-{i:04d}",
                type=kind,
                run_id=f"run-{i % 3}",
                symbol=["BTC-USD", "ETH-USD"][i % 2],
                reason=reason,
                at=(i * 37) % 240,  # times not in sequence order
            )
        )
    return events


def matches(e: live_pb2.Event, f: live_pb2.EventFilter) -> bool:
    start = f.time_range.start_time.ToNanoseconds() if f.time_range.HasField("start_time") else None
    end = f.time_range.end_time.ToNanoseconds() if f.time_range.HasField("end_time") else None
    t = e.time.ToNanoseconds()
    return (
        (not f.types or e.type in f.types)
        and (not f.run_id or e.run_id == f.run_id)
        and (not f.reason or e.reason == f.reason)
        and (not f.symbol or e.symbol == f.symbol)
        and (start is None or t >= start)
        and (end is None or t < end)
    )


FILTERS = [
    live_pb2.EventFilter(),
    live_pb2.EventFilter(types=[live_pb2.EVENT_TYPE_TRADE_BLOCKED]),
    live_pb2.EventFilter(types=[live_pb2.EVENT_TYPE_ORDER_FILLED, live_pb2.EVENT_TYPE_RUN_STARTED]),
    live_pb2.EventFilter(run_id="run-1"),
    live_pb2.EventFilter(reason="max_notional"),
    live_pb2.EventFilter(symbol="ETH-USD"),
    live_pb2.EventFilter(
        time_range=common_pb2.TimeRange(start_time=timestamp(50), end_time=timestamp(120))
    ),
    live_pb2.EventFilter(time_range=common_pb2.TimeRange(start_time=timestamp(200))),
    live_pb2.EventFilter(time_range=common_pb2.TimeRange(end_time=timestamp(10))),
    live_pb2.EventFilter(
        types=[live_pb2.EVENT_TYPE_TRADE_BLOCKED, live_pb2.EVENT_TYPE_RUN_STARTED],
        run_id="run-2",
        reason="max_notional",
        symbol="BTC-USD",
        time_range=common_pb2.TimeRange(start_time=timestamp(20), end_time=timestamp(230)),
    ),
    live_pb2.EventFilter(run_id="no-such-run"),
]


async def pages(call, request) -> tuple[list[live_pb2.Event], list]:
    events, replies = [], []
    while True:
        reply = await call(request)
        replies.append(reply)
        events.extend(reply.events)
        if not reply.next_page_token:
            return events, replies
        request.page_token = reply.next_page_token


async def test_every_filter_pages_through_each_match_exactly_once_newest_first(
    database_url, data_dir
):
    source = dataset()
    async with running_live(database_url, data_dir) as live:
        appended = await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=source))
        sequence_of = dict(zip((e.event_id for e in source), appended.sequences, strict=True))
        for event_filter in FILTERS:
            request = live_pb2.ListEventsRequest(filter=event_filter, page_size=7)
            got, replies = await pages(live.stub.ListEvents, request)

            expected = sorted(
                (e.event_id for e in source if matches(e, event_filter)),
                key=lambda i: -sequence_of[i],
            )
            assert [e.event_id for e in got] == expected, event_filter
            assert all(len(r.events) == 7 for r in replies[:-1])


async def test_list_blocks_is_the_trade_blocked_view_with_counts_for_the_whole_filter(
    database_url, data_dir
):
    source = dataset()
    async with running_live(database_url, data_dir) as live:
        await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=source))
        for event_filter in FILTERS:
            request = live_pb2.ListBlocksRequest(filter=event_filter, page_size=5)
            got, replies = await pages(live.stub.ListBlocks, request)

            view = live_pb2.EventFilter()
            view.CopyFrom(event_filter)
            del view.types[:]
            view.types.append(live_pb2.EVENT_TYPE_TRADE_BLOCKED)
            expected = [e for e in source if matches(e, view)]
            assert sorted(e.event_id for e in got) == sorted(e.event_id for e in expected)
            counts = Counter(e.reason for e in expected)
            for reply in replies:
                assert [(c.reason, c.count) for c in reply.reason_counts] == sorted(
                    counts.items(), key=lambda item: (-item[1], item[0])
                )


async def test_a_page_token_only_resumes_the_filter_it_was_issued_for(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=dataset(40)))
        first = await live.stub.ListEvents(
            live_pb2.ListEventsRequest(filter=live_pb2.EventFilter(run_id="run-1"), page_size=2)
        )
        token = first.next_page_token
        body, _, mac = token.partition(".")
        forged = f"{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{mac}"
        refused = [
            live.stub.ListEvents(
                live_pb2.ListEventsRequest(
                    filter=live_pb2.EventFilter(run_id="run-2"), page_token=token
                )
            ),
            live.stub.ListEvents(live_pb2.ListEventsRequest(page_token="not-a-token")),
            live.stub.ListEvents(live_pb2.ListEventsRequest(page_token=forged)),
            live.stub.ListEvents(live_pb2.ListEventsRequest(page_token=token[: len(token) // 2])),
            live.stub.ListBlocks(
                live_pb2.ListBlocksRequest(
                    filter=live_pb2.EventFilter(run_id="run-1"), page_token=token
                )
            ),
        ]
        for call in refused:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert set(field_violations(caught.value)) == {"page_token"}


async def test_events_appended_while_paging_do_not_shift_pages(database_url, data_dir):
    async with running_live(database_url, data_dir) as live:
        await live.stub.AppendEvents(
            live_pb2.AppendEventsRequest(events=[event(f"old-{i}") for i in range(10)])
        )
        first = await live.stub.ListEvents(live_pb2.ListEventsRequest(page_size=4))
        await live.stub.AppendEvents(
            live_pb2.AppendEventsRequest(events=[event(f"new-{i}") for i in range(10)])
        )
        rest, _ = await pages(
            live.stub.ListEvents,
            live_pb2.ListEventsRequest(page_size=4, page_token=first.next_page_token),
        )

        seen = [e.event_id for e in itertools.chain(first.events, rest)]
        assert seen == [f"old-{i}" for i in range(9, -1, -1)]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (live_pb2.ListEventsRequest(page_size=-1), "page_size"),
        (live_pb2.ListEventsRequest(page_size=1001), "page_size"),
        (live_pb2.ListEventsRequest(filter=live_pb2.EventFilter(types=[0])), "filter.types[0]"),
        (
            live_pb2.ListEventsRequest(
                filter=live_pb2.EventFilter(
                    time_range=common_pb2.TimeRange(start_time=timestamp(5), end_time=timestamp(1))
                )
            ),
            "filter.time_range.end_time",
        ),
    ],
)
async def test_bad_list_requests_are_invalid_argument(database_url, data_dir, request_, field):
    async with running_live(database_url, data_dir) as live:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.ListEvents(request_)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in caught.value.details()


async def test_pages_and_stream_messages_of_large_payloads_stay_under_the_message_limit(
    database_url, data_dir
):
    big = {f"part{i}": "x" * 4_000 for i in range(15)}  # 60 KB, each string within its bound
    source = [event(f"big-{i:03d}", payload=big) for i in range(100)]
    async with running_live(database_url, data_dir) as live:
        for start in range(0, 100, 25):
            await live.stub.AppendEvents(
                live_pb2.AppendEventsRequest(events=source[start : start + 25])
            )
        got, replies = await pages(live.stub.ListEvents, live_pb2.ListEventsRequest(page_size=100))

        assert [e.event_id for e in got] == [f"big-{i:03d}" for i in range(99, -1, -1)]
        assert len(replies) > 1  # cut short of page_size by bytes, resumed by the token
        assert all(r.ByteSize() < 5 * 1024 * 1024 for r in replies)

        call = live.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest())
        streamed: list[live_pb2.Event] = []
        while len(streamed) < 100:
            message = await call.read()
            assert message.ByteSize() < 5 * 1024 * 1024
            streamed.extend(message.events)
        call.cancel()
        assert [e.event_id for e in streamed] == [f"big-{i:03d}" for i in range(100)]


async def test_a_closed_time_range_pages_the_same_by_either_plan(database_url, data_dir):
    from tapedeck_live import repository
    from tapedeck_live.domain import EventFilter

    source = dataset()
    async with running_live(database_url, data_dir) as live:
        await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=source))
        sessions = live.app.components.registrations[0].servicer._reads
        base = source[0].time.ToNanoseconds()
        window = EventFilter(start_ns=base + 30 * 10**9, end_ns=base + 90 * 10**9)
        pages_by_plan = []
        for range_first in (False, True):
            seen, before = [], None
            while True:
                statement = repository.page_statement(
                    window, before=before, limit=10, range_first=range_first
                )
                async with sessions() as session:
                    rows = (await session.execute(statement)).all()
                seen.extend(row.event_id for row in rows[:9])
                if len(rows) <= 9:
                    break
                before = rows[8].sequence
            pages_by_plan.append(seen)

        expected = [
            e.event_id
            for e in reversed(source)
            if 30 <= (e.time.seconds - source[0].time.seconds) < 90
        ]
        assert pages_by_plan[0] == pages_by_plan[1] == expected
