"""PostgreSQL only: two live processes sharing the tail, and the filter plans at 1M events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import grpc
import pytest
from sqlalchemy.dialects import postgresql

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_live import repository
from tapedeck_live.domain import EventFilter, EventType
from tests.live.support import GENERATE_EVENTS, event, live_process, running_live
from tests.support import postgres_database

pytestmark = pytest.mark.postgres


async def test_an_event_appended_through_one_process_reaches_a_subscriber_of_another(
    tmp_path: Path,
):
    async with postgres_database() as url:
        # A heartbeat far beyond the test's wait: only LISTEN/NOTIFY can deliver in time.
        quiet = {"LIVE_HEARTBEAT_SECONDS": "120"}
        async with (
            live_process(url, tmp_path / "a", **quiet) as a,
            live_process(url, tmp_path / "b", **quiet) as b,
            grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as channel_a,
            grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as channel_b,
        ):
            writer = live_pb2_grpc.LiveServiceStub(channel_a)
            reader = live_pb2_grpc.LiveServiceStub(channel_b)
            call = reader.SubscribeEvents(
                live_pb2.SubscribeEventsRequest(
                    filter=live_pb2.EventFilter(run_id="run-x"), tail_only=True
                )
            )
            await asyncio.wait_for(call.read(), timeout=10)
            for round_ in range(3):
                await writer.AppendEvents(
                    live_pb2.AppendEventsRequest(
                        events=[
                            event(f"other-{round_}", run_id="run-y"),
                            event(f"mine-{round_}", run_id="run-x"),
                        ]
                    )
                )
                message = await asyncio.wait_for(call.read(), timeout=5)
                assert [e.event_id for e in message.events] == [f"mine-{round_}"]
            call.cancel()


PAGE = 50
BROAD = {"no filter"}
EXACT_FILTERS = {
    "no filter": EventFilter(),
    "type": EventFilter(types=(EventType.TRADE_BLOCKED,)),
    "run": EventFilter(run_id="run-43"),
    "symbol": EventFilter(symbol="SYM17-USD"),
    "reason": EventFilter(reason="stale_balance"),
    "blocks by reason": EventFilter(types=(EventType.TRADE_BLOCKED,), reason="max_notional"),
    "blocks by run": EventFilter(types=(EventType.TRADE_BLOCKED,), run_id="run-43"),
    "blocks by symbol": EventFilter(types=(EventType.TRADE_BLOCKED,), symbol="SYM17-USD"),
}


def scans(plan: dict) -> list[dict]:
    found = [plan] if "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        found.extend(scans(child))
    return found


def node_types(plan: dict) -> set[str]:
    types = {plan["Node Type"]}
    for child in plan.get("Plans", []):
        types |= node_types(child)
    return types


async def explain(connection: asyncpg.Connection, statement) -> dict:
    sql = str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )
    rows = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
    return json.loads(rows)[0]["Plan"]


@pytest.mark.slow
async def test_each_filter_at_a_million_events_reads_one_page_through_an_index(
    tmp_path: Path,
):
    async with postgres_database() as url:
        async with running_live(url, tmp_path):
            pass  # migrated
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await connection.execute(GENERATE_EVENTS, 1_000_000)
            await connection.execute("ANALYZE events")
            for name, event_filter in EXACT_FILTERS.items():
                for before in (None, 500_000):  # the first page, and one deep in the keyset
                    plan = await explain(
                        connection,
                        repository.page_statement(event_filter, before=before, limit=PAGE + 1),
                    )
                    assert plan["Node Type"] == "Limit", name
                    assert "Sort" not in node_types(plan), name
                    (scan,) = scans(plan)
                    assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), (name, scan)
                    assert scan["Actual Rows"] == PAGE + 1, (name, scan)
                    allowed = 0
                    assert scan.get("Rows Removed by Filter", 0) <= allowed, (name, scan)

            # Several types: one index walk per type merged in order, no sort of all matches.
            several = EventFilter(
                types=(EventType.TRADE_BLOCKED, EventType.RUN_FAILED, EventType.RUN_STARTED),
                run_id="run-43",
            )
            plan = await explain(
                connection, repository.page_statement(several, before=None, limit=PAGE + 1)
            )
            assert "Merge Append" in node_types(plan)
            assert all(s["Node Type"] in ("Index Scan", "Index Only Scan") for s in scans(plan))
            assert sum(s["Actual Rows"] for s in scans(plan)) <= PAGE + 1 + 3

            # A time range: served by the (ts_ns, sequence) index; never a sequential scan.
            recent = EventFilter(start_ns=1767225600000000000 + 999_000 * 1_000_000_000)
            plan = await explain(
                connection, repository.page_statement(recent, before=None, limit=PAGE + 1)
            )
            assert all(s["Node Type"] != "Seq Scan" for s in scans(plan))
            assert sum(s["Actual Rows"] for s in scans(plan)) <= 1000 + 1

            # A closed range deep in history: the newest sequences among the range's index
            # entries (index only), not a walk of the primary key past every newer event.
            base, second = 1767225600000000000, 1_000_000_000
            day = EventFilter(start_ns=base + 500_000 * second, end_ns=base + 586_400 * second)
            plan = await explain(
                connection,
                repository.page_statement(day, before=None, limit=PAGE + 1, range_first=True),
            )
            index_scans = [s for s in scans(plan) if "Index Name" in s]
            (range_scan, by_key) = sorted(index_scans, key=lambda s: s["Index Name"], reverse=True)
            # Index only once vacuum has set the visibility map; a bitmap scan before that.
            assert range_scan["Node Type"] in ("Index Only Scan", "Bitmap Index Scan")
            assert range_scan["Index Name"] == "ix_events_ts_sequence"
            assert by_key["Index Name"] == "events_pkey"
            assert by_key["Actual Rows"] * by_key["Actual Loops"] == PAGE + 1

            # The counts per reason: a GROUP BY over the partial index, not rows in Python.
            counts = repository.reason_counts_statement(EventFilter(run_id="run-43"))
            plan = await explain(connection, counts)
            assert all(s["Node Type"] != "Seq Scan" for s in scans(plan))
        finally:
            await connection.close()
