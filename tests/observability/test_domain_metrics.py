"""The domain metrics on real services: run durations by final state and the engine's rate, import
throughput, the live subscribers' lag, and waits for a pooled database connection."""

from __future__ import annotations

import asyncio

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.live.v1 import live_pb2
from tapedeck_common.database import TimedPool
from tests.backtest.runs_support import running_service, spec
from tests.backtest.test_runs import running_with_progress, slow_spec
from tests.live.support import event, running_live
from tests.observability.support import scrape
from tests.support import eventually, free_port


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_runs_count_their_duration_by_final_state_and_imports_their_rows(
    database_url, data_dir
):
    port = free_port()
    async with running_service(database_url, data_dir, metrics_port=port) as service:
        before = scrape(port)
        dataset = await service.import_trades(rows=4000)
        imported = scrape(port)
        done = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        assert (await service.wait(done.backtest.name)).state == pb.BACKTEST_STATE_SUCCEEDED
        slow = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=slow_spec(dataset)))
        await running_with_progress(service, slow.backtest.name)
        await service.stub.CancelBacktest(pb.CancelBacktestRequest(name=slow.backtest.name))

        async def cancelled_counted() -> dict | None:
            samples = scrape(port)
            counted = moved(
                before, samples, "tapedeck_run_duration_seconds_count", state="CANCELLED"
            )
            return samples if counted else None

        after = await eventually(cancelled_counted, timeout=30, message="cancelled run counted")

    source_bytes = (service.raw_dir / "trades.parquet").stat().st_size
    assert moved(before, imported, "tapedeck_import_rows_total") == 4000
    assert moved(before, imported, "tapedeck_import_bytes_total") == source_bytes
    assert moved(before, imported, "tapedeck_import_duration_seconds_count") == 1
    assert moved(before, imported, "tapedeck_import_duration_seconds_sum") > 0

    for state, runs in (("SUCCEEDED", 1), ("CANCELLED", 1), ("FAILED", 0)):
        count = moved(before, after, "tapedeck_run_duration_seconds_count", state=state)
        assert count == runs, state
    assert moved(before, after, "tapedeck_run_duration_seconds_sum", state="SUCCEEDED") > 0
    # The engine's rate of the succeeded run: 4,000 trades in well under a minute.
    assert moved(before, after, "tapedeck_engine_events_per_second_count") == 1
    assert moved(before, after, "tapedeck_engine_events_per_second_sum") > 4000 / 60


async def test_a_subscriber_that_stops_reading_shows_its_lag_until_it_catches_up(
    database_url, data_dir
):
    port = free_port()
    async with running_live(
        database_url, data_dir, metrics_port=port, metrics_sample_seconds=0.1
    ) as live:
        call = live.stub.SubscribeEvents(live_pb2.SubscribeEventsRequest(tail_only=True))
        await call.read()  # at the head; from now on this consumer reads nothing
        # ~24 MB of events: more than the HTTP/2 windows and buffers between the two hold, so
        # the server's writes wait and the subscriber's cursor stays behind the head.
        payload = {"note": "x" * 4000}
        head = 0
        for batch in range(6):
            appended = await live.stub.AppendEvents(
                live_pb2.AppendEventsRequest(
                    events=[event(f"big-{batch}-{i}", payload=payload) for i in range(900)]
                )
            )
            head = max(appended.sequences)

        async def behind() -> dict | None:
            samples = scrape(port)
            lagging = value(samples, "tapedeck_live_subscriber_max_lag_events") > 0
            return samples if lagging else None

        lag = await eventually(behind, timeout=20, message="the subscriber's lag shown")
        assert value(lag, "tapedeck_live_subscriber_max_lag_events") <= head
        assert value(lag, "tapedeck_live_subscriber_max_lag_seconds") > 0

        cursor = 0
        while cursor < head:
            message = await asyncio.wait_for(call.read(), timeout=20)
            assert message is not grpc.aio.EOF
            cursor = message.cursor

        async def caught_up() -> bool:
            samples = scrape(port)
            return (
                value(samples, "tapedeck_live_subscriber_max_lag_events") == 0
                and value(samples, "tapedeck_live_subscriber_max_lag_seconds") == 0
            )

        await eventually(caught_up, timeout=20, message="the subscriber caught up")
        call.cancel()


async def test_a_call_that_waits_for_a_pooled_connection_counts_a_pool_wait(database_url, data_dir):
    port = free_port()
    async with running_live(
        database_url,
        data_dir,
        metrics_port=port,
        metrics_sample_seconds=0.1,
        db_pool_size=1,
        db_max_overflow=0,
    ) as live:
        before = scrape(port)
        async with live.app.engine.connect():  # the pool's one connection, held

            async def in_use() -> bool:
                return value(scrape(port), "tapedeck_db_pool_connections_in_use") == 1

            await eventually(in_use, message="the held connection counted")
            listing = asyncio.ensure_future(live.stub.ListEvents(live_pb2.ListEventsRequest()))
            pool = live.app.engine.pool
            assert isinstance(pool, TimedPool)

            async def waited() -> bool:
                return pool.longest_wait() >= 0.3

            await eventually(waited, message="the call waiting for the connection")
            assert not listing.done()
        await listing
        after = scrape(port)

    assert moved(before, after, "tapedeck_db_pool_wait_seconds_count") >= 1
    assert moved(before, after, "tapedeck_db_pool_wait_seconds_sum") >= 0.3
