"""The run queue does no idle work: it wakes on a notification, and keeps its workers warm."""

from __future__ import annotations

import asyncio
import os
import signal

import asyncpg
import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.runs.domain import Run
from tapedeck_backtest.runs.queue import RunQueue
from tapedeck_backtest.runs.workers import WorkerPool
from tapedeck_common.outbox import OTHERS_GRACE_SECONDS
from tests.backtest.runs_support import running_service, spec, worker_pool
from tests.backtest.test_runs import running_with_progress, slow_spec
from tests.live.support import running_live
from tests.support import POSTGRES_ADMIN_DSN, counted_statements, eventually, postgres_database

# Longer than any test here: only a notification can start a run.
NO_POLL = {"queue_poll_seconds": 3600.0}
# PostgreSQL 15 reports a backend's transaction counts when it goes idle, at most every 10 s.
STATS_FLUSH_SECONDS = 11.0


async def transactions(database: str) -> int:
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        return int(
            await admin.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
                database,
            )
        )
    finally:
        await admin.close()


@pytest.mark.postgres
async def test_an_idle_stack_of_two_replicas_commits_nothing_then_a_run_queued_on_one_runs_on_the_other(
    tmp_path,
):
    async with postgres_database() as url:
        database = url.rsplit("/", 1)[1]
        async with (
            # The runs' live events go to a live service of the test's own.
            running_live(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}", tmp_path) as live,
            running_service(
                url,
                tmp_path / "api",
                workers=0,
                live_address=f"127.0.0.1:{live.app.port}",
                **NO_POLL,
            ) as api,
        ):
            dataset = await api.import_trades(rows=1000)
            async with running_service(
                url,
                tmp_path / "pool",
                workers=1,
                catalog_dir=tmp_path / "api" / "catalog",
                live_address=f"127.0.0.1:{live.app.port}",
                **NO_POLL,
            ) as pool:
                # Let start-up's transactions be reported (with the outbox's look after its
                # LISTEN connected, given as long again on a busy machine), then watch an idle
                # window.
                await asyncio.sleep(2 * OTHERS_GRACE_SECONDS + STATS_FLUSH_SECONDS)
                before = await transactions(database)
                await asyncio.sleep(STATS_FLUSH_SECONDS)
                idle = await transactions(database) - before

                # The API-only replica has no pool: the other one hears of the run by NOTIFY.
                created = await api.stub.CreateBacktest(
                    pb.CreateBacktestRequest(spec=spec(dataset))
                )
                final = await pool.wait(created.backtest.name, seconds=60)

        assert idle == 0
        assert final.state == pb.BACKTEST_STATE_SUCCEEDED


async def test_a_worker_that_dies_while_idle_is_replaced_at_once(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=2, **NO_POLL) as service:
        pool = worker_pool(service.app)

        async def warm() -> set[int] | None:
            now = set(pool.peak_rss_mb())
            return now if len(now) == 2 else None

        pids = await eventually(warm, timeout=30, message="two warm workers")
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> set[int] | None:
            now = set(pool.peak_rss_mb())
            return now if len(now) == 2 and victim not in now else None

        after = await eventually(replaced, timeout=20, message="a fresh worker")
        assert after - pids  # a new process, beside the survivor
        assert pids - {victim} <= after


async def test_a_worker_left_idle_with_an_engine_is_replaced_by_a_fresh_one(database_url, data_dir):
    async with running_service(
        database_url, data_dir, workers=1, worker_idle_engine_seconds=0.5, **NO_POLL
    ) as service:
        pool = worker_pool(service.app)

        async def worker() -> int | None:
            now = list(pool.peak_rss_mb())
            return now[0] if len(now) == 1 else None

        # The warm worker has no engine: it is kept, and it takes the run.
        warm = await eventually(worker, timeout=30, message="a warm worker")
        dataset = await service.import_trades(rows=1000)
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        final = await service.wait(created.backtest.name)

        async def fresh() -> int | None:
            now = await worker()
            return now if now not in (None, warm) else None

        replacement = await eventually(fresh, timeout=30, message="a fresh worker")

    assert final.state == pb.BACKTEST_STATE_SUCCEEDED
    assert replacement != warm


async def test_a_run_queued_while_the_pool_looks_for_one_is_claimed_at_once(
    database_url, data_dir, monkeypatch
):
    # A look for a queued run can miss one queued while it looks (its query read the table
    # before): that run's wake-up must bring another look, not be spent on the one that missed
    # it, or the run waits for a worker to free or for the safety poll with a worker idle.
    async with running_service(database_url, data_dir, workers=2, **NO_POLL) as service:
        dataset = await service.import_trades()
        claim = RunQueue.claim
        claimed: list[str] = []
        queued_during_a_look: list[str] = []

        async def claim_missing_a_run_queued_meanwhile(
            queue: RunQueue, *, owner: str
        ) -> Run | None:
            run = await claim(queue, owner=owner)
            if run is not None:
                claimed.append(run.id)
            elif claimed and not queued_during_a_look:
                created = await service.stub.CreateBacktest(
                    pb.CreateBacktestRequest(spec=spec(dataset))
                )
                queued_during_a_look.append(created.backtest.name)
            return run

        monkeypatch.setattr(RunQueue, "claim", claim_missing_a_run_queued_meanwhile)
        slow = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset, sleep_seconds=0.2))
        )
        await running_with_progress(service, slow.backtest.name)

        async def queued_during_a_look_yet() -> list[str]:
            return queued_during_a_look

        (missed,) = await eventually(queued_during_a_look_yet, message="a run queued during a look")
        final = await service.wait(missed, seconds=30)
        still = await service.stub.GetBacktest(pb.GetBacktestRequest(name=slow.backtest.name))
        await service.stub.CancelBacktest(pb.CancelBacktestRequest(name=slow.backtest.name))

    assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
    # It ran beside the slow run, in the idle worker.
    assert still.backtest.state == pb.BACKTEST_STATE_RUNNING


async def test_an_idle_pool_polls_nothing_while_no_run_is_queued_or_held_elsewhere(
    database_url, data_dir
):
    poll = {"queue_poll_seconds": 0.1}
    async with running_service(database_url, data_dir, workers=1, **poll) as service:
        # Start-up checks once, and so does the wake-up of a (re)connected LISTEN (PostgreSQL);
        # after that, whole windows of ten poll intervals go by without a statement.
        windows = []
        for _ in range(4):
            with counted_statements(service.app.engine) as statements:
                await asyncio.sleep(1.0)
            windows.append(len(statements))
    assert windows[-2:] == [0, 0], windows


async def test_a_run_held_by_a_replica_that_died_is_recovered_by_an_idle_one(
    database_url, data_dir
):
    # Both replicas idle and quiet; the run queued wakes both, so the one that does not take it
    # polls while the other holds it, and takes it over once the holder's lease lapses.
    settings = {"queue_poll_seconds": 0.1, "run_lease_seconds": 3.0}
    other_dir = data_dir.parent / "replica"
    other_dir.mkdir()
    async with (
        running_service(database_url, data_dir, workers=1, **settings) as first,
        running_service(
            database_url,
            other_dir,
            workers=1,
            catalog_dir=data_dir / "catalog",
            results_dir=data_dir / "runs",
            **settings,
        ) as second,
    ):
        dataset = await first.import_trades()
        await asyncio.sleep(0.5)  # both pools past their last poll
        created = await first.stub.CreateBacktest(pb.CreateBacktestRequest(spec=slow_spec(dataset)))
        run_id = created.backtest.name.split("/")[1]
        pools = [worker_pool(first.app), worker_pool(second.app)]

        async def holder() -> WorkerPool | None:
            return next((pool for pool in pools if run_id in pool.worker_pids()), None)

        dead = await eventually(holder, timeout=30, message="a replica running the run")
        # The holder dies: its supervisor stops renewing the lease, its worker is killed.
        os.kill(dead.worker_pids()[run_id], signal.SIGKILL)
        assert dead._task is not None
        dead._task.cancel()
        survivor = second if dead is pools[0] else first
        final = await survivor.wait(created.backtest.name, seconds=60)
    assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
