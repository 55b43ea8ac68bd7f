"""Backtest runs through a real server: queue, workers, progress, cache, cancel, failures."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tests.backtest.runs_support import Service, running_service, spec, worker_pids
from tests.support import eventually, field_violations


async def test_backtest_runs_to_succeeded_with_stats_and_progress(database_url, data_dir):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        # Returned at once: stored, not run (a worker runs it after).
        assert created.backtest.state == pb.BACKTEST_STATE_QUEUED
        assert created.backtest.progress.percent == 0
        assert not created.backtest.HasField("stats")
        assert not created.cached
        states = []
        async for message in service.stub.WatchBacktest(
            pb.WatchBacktestRequest(name=created.backtest.name), timeout=60
        ):
            states.append(message.backtest.state)
        final = message.backtest
        assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
        assert states[-1] == pb.BACKTEST_STATE_SUCCEEDED
        assert final.progress.percent == pytest.approx(100.0)
        assert final.progress.events_processed == 4000
        assert final.stats.fill_count > 0
        assert final.stats.trade_count > 0
        assert final.content_version.startswith("succeeded-")


def slow_spec(dataset: str, *, sleep_seconds: float = 0.02) -> pb.BacktestSpec:
    return spec(
        dataset,
        strategy="slow_cross",
        parameters={"sleep_seconds": pb.ParameterValue(double_value=sleep_seconds)},
    )


async def running_with_progress(service: Service, name: str) -> pb.Backtest:
    async def probe() -> pb.Backtest | None:
        reply = await service.stub.GetBacktest(pb.GetBacktestRequest(name=name))
        run = reply.backtest
        if run.state == pb.BACKTEST_STATE_RUNNING and run.progress.percent > 0:
            return run
        assert run.state in (pb.BACKTEST_STATE_QUEUED, pb.BACKTEST_STATE_RUNNING), run
        return None

    return await eventually(probe, timeout=30, message="run RUNNING with progress")


async def test_same_spec_returns_the_finished_run_as_cached(database_url, data_dir):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        first = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        finished = await service.wait(first.backtest.name)
        assert finished.state == pb.BACKTEST_STATE_SUCCEEDED, finished.error_message

        again = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        assert again.cached
        assert again.backtest.name == first.backtest.name
        assert again.backtest.content_version == finished.content_version
        assert again.backtest.spec_hash == finished.spec_hash

        other = spec(dataset)
        other.parameters["slow_period"].int_value = 16
        different = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=other))
        assert not different.cached
        assert different.backtest.name != first.backtest.name
        assert different.backtest.spec_hash != finished.spec_hash


async def test_identical_specs_created_at_once_share_one_run(database_url, data_dir):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        request = pb.CreateBacktestRequest(spec=slow_spec(dataset))
        created = await asyncio.gather(*(service.stub.CreateBacktest(request) for _ in range(8)))
        assert len({reply.backtest.name for reply in created}) == 1
        assert sorted(reply.cached for reply in created) == [False] + [True] * 7
        listed = await service.stub.ListBacktests(pb.ListBacktestsRequest())
        assert [run.name for run in listed.backtests] == [created[0].backtest.name]
        await service.stub.CancelBacktest(pb.CancelBacktestRequest(name=created[0].backtest.name))


async def test_cancel_stops_a_running_run_and_frees_its_worker(database_url, data_dir):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset))
        )
        name = created.backtest.name
        await running_with_progress(service, name)
        run_id = name.split("/")[1]
        assert run_id in worker_pids(service.app)

        reply = await service.stub.CancelBacktest(pb.CancelBacktestRequest(name=name))
        assert reply.backtest.state == pb.BACKTEST_STATE_CANCELLED

        async def worker_released() -> bool:
            return run_id not in worker_pids(service.app)

        await eventually(worker_released, timeout=30, message="the engine to stop")
        final = await service.wait(name)
        assert final.state == pb.BACKTEST_STATE_CANCELLED
        assert final.progress.percent < 100
        assert final.content_version.startswith("cancelled-")
        # Stopped, not finished: the run wrote no results and gave its worker to the next run.
        assert not (data_dir / "runs" / run_id).exists()
        fresh = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        assert (await service.wait(fresh.backtest.name)).state == pb.BACKTEST_STATE_SUCCEEDED


async def test_a_killed_worker_fails_the_run_with_the_reason(database_url, data_dir):
    async with running_service(database_url, data_dir, run_max_attempts=1) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset))
        )
        name = created.backtest.name
        await running_with_progress(service, name)
        os.kill(worker_pids(service.app)[name.split("/")[1]], signal.SIGKILL)

        final = await service.wait(name)
        assert final.state == pb.BACKTEST_STATE_FAILED
        assert "exited with code -9 during the run" in final.error_message

        # The pool replaces the dead process: the next run still succeeds.
        fresh = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        assert (await service.wait(fresh.backtest.name)).state == pb.BACKTEST_STATE_SUCCEEDED


async def test_a_killed_worker_run_is_rerun_to_success(database_url, data_dir):
    async with running_service(database_url, data_dir, run_max_attempts=2) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset, sleep_seconds=0.01))
        )
        name = created.backtest.name
        await running_with_progress(service, name)
        os.kill(worker_pids(service.app)[name.split("/")[1]], signal.SIGKILL)

        final = await service.wait(name)
        assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
        assert final.stats.fill_count > 0


async def test_an_engine_error_fails_the_run_with_its_message(database_url, data_dir):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(
                spec=spec(
                    dataset,
                    strategy="exploding",
                    parameters={"explode_at": pb.ParameterValue(int_value=5)},
                )
            )
        )
        final = await service.wait(created.backtest.name)
        assert final.state == pb.BACKTEST_STATE_FAILED
        assert "RuntimeError: boom at bar 5" in final.error_message
        assert "Traceback" not in final.error_message


async def test_runs_left_running_by_a_dead_service_are_recovered_at_start(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=0) as service:
        dataset = await service.import_trades()
        names = []
        for slow in (16, 17):
            request = spec(dataset)
            request.parameters["slow_period"].int_value = slow
            created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
            names.append(created.backtest.name)
    finished = await asyncio.create_subprocess_exec("true")
    await finished.wait()
    host = os.uname().nodename[:30].replace("-", "_")
    # What services killed mid-run leave behind: RUNNING rows they own. One on another host
    # whose lease expired long ago; one on this host, lease fresh, but its process is gone.
    leftovers = [
        ("other_host-4242-aaaa", datetime.now(UTC) - timedelta(hours=1)),
        (f"{host}-{finished.pid}-bbbb", datetime.now(UTC)),
    ]
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        for name, (owner, heartbeat) in zip(names, leftovers, strict=True):
            await connection.execute(
                text(
                    "UPDATE backtests SET state = 'RUNNING', owner = :owner, attempts = 1,"
                    " heartbeat_time = :heartbeat WHERE id = :id"
                    # Bound as the model's column (sqlite3's datetime adapter is deprecated).
                ).bindparams(bindparam("heartbeat", type_=DateTime(timezone=True))),
                {"owner": owner, "heartbeat": heartbeat, "id": name.split("/")[1]},
            )
    await engine.dispose()

    # A lease far longer than the test: only the start-up checks can recover these runs.
    async with running_service(database_url, data_dir, workers=1, run_lease_seconds=600) as service:
        for name in names:
            final = await service.wait(name, seconds=60)
            assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message


async def test_watch_streams_progress_then_the_final_state(database_url, data_dir):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset, sleep_seconds=0.01))
        )
        updates = [
            message.backtest
            async for message in service.stub.WatchBacktest(
                pb.WatchBacktestRequest(name=created.backtest.name), timeout=60
            )
        ]
        running = [u for u in updates if u.state == pb.BACKTEST_STATE_RUNNING]
        percents = [u.progress.percent for u in running]
        assert len(percents) >= 2
        assert percents == sorted(percents)
        assert any(u.progress.events_per_second > 0 for u in running)
        assert any(u.progress.eta.ToNanoseconds() > 0 for u in running)
        assert updates[-1].state == pb.BACKTEST_STATE_SUCCEEDED


async def test_create_refuses_bad_specs_naming_the_field(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=0) as service:
        dataset = await service.import_trades()
        cases = []
        bad_strategy = spec(dataset, strategy="nope")
        cases.append((bad_strategy, "spec.strategy"))
        unknown_parameter = spec(dataset)
        unknown_parameter.parameters["nope"].int_value = 1
        cases.append((unknown_parameter, "spec.parameters[nope]"))
        inverted = spec(dataset)
        inverted.parameters["fast_period"].int_value = 40
        cases.append((inverted, "spec.parameters[fast_period]"))
        wrong_type = spec(dataset)
        wrong_type.parameters["fast_period"].string_value = "fast"
        cases.append((wrong_type, "spec.parameters[fast_period]"))
        euro = spec(dataset, balances=(("EUR", "100"),))
        cases.append((euro, "spec.starting_balances[0].currency"))
        negative = spec(dataset, balances=(("USDT", "-5"),))
        cases.append((negative, "spec.starting_balances[0].amount"))
        no_money = spec(dataset, balances=())
        cases.append((no_money, "spec.starting_balances"))
        outside = spec(dataset)
        outside.time_range.start_time.FromSeconds(100)
        outside.time_range.end_time.FromSeconds(200)
        cases.append((outside, "spec.time_range"))
        odd_interval = spec(dataset)
        odd_interval.bar_interval.nanos = 5
        cases.append((odd_interval, "spec.bar_interval"))
        bad_name = spec("datasets/../etc")
        cases.append((bad_name, "spec.dataset"))
        for bad, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=bad))
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in field_violations(raised.value), (field, field_violations(raised.value))

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service.stub.CreateBacktest(
                pb.CreateBacktestRequest(spec=spec("datasets/missing"))
            )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service.stub.GetBacktest(pb.GetBacktestRequest(name="backtests/missing"))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await service.stub.ListBacktests(pb.ListBacktestsRequest())
        assert list(listed.backtests) == []


async def test_list_backtests_pages_newest_first_and_filters_by_state(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=0) as service:
        dataset = await service.import_trades()
        names = []
        for slow in (16, 17, 18):
            request = spec(dataset)
            request.parameters["slow_period"].int_value = slow
            created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
            names.append(created.backtest.name)
        await service.stub.CancelBacktest(pb.CancelBacktestRequest(name=names[0]))

        first = await service.stub.ListBacktests(pb.ListBacktestsRequest(page_size=2))
        second = await service.stub.ListBacktests(
            pb.ListBacktestsRequest(page_size=2, page_token=first.next_page_token)
        )
        assert [b.name for b in first.backtests] + [b.name for b in second.backtests] == names[::-1]
        assert second.next_page_token == ""
        queued = await service.stub.ListBacktests(
            pb.ListBacktestsRequest(states=[pb.BACKTEST_STATE_QUEUED])
        )
        assert [b.name for b in queued.backtests] == names[:0:-1]


async def test_two_replicas_share_the_queue_and_run_each_run_once(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=1) as first:
        dataset = await first.import_trades()
        other_dir = data_dir.parent / "replica"
        other_dir.mkdir()
        # A second replica on the same database and the same catalog and results directories.
        async with running_service(
            database_url,
            other_dir,
            workers=1,
            catalog_dir=data_dir / "catalog",
            results_dir=data_dir / "runs",
        ) as second:
            names = []
            for slow in (16, 17, 18, 19):
                request = spec(dataset)
                request.parameters["slow_period"].int_value = slow
                created = await first.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
                names.append(created.backtest.name)
            finals = [await second.wait(name) for name in names]
            assert all(f.state == pb.BACKTEST_STATE_SUCCEEDED for f in finals), finals
    engine = create_async_engine(database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT owner, attempts FROM backtests"))).all()
    await engine.dispose()
    assert [attempts for _, attempts in rows] == [1, 1, 1, 1]
    assert len({owner for owner, _ in rows}) == 2  # both replicas took work


async def test_a_run_over_the_run_timeout_is_stopped_and_failed(database_url, data_dir):
    async with running_service(database_url, data_dir, run_timeout_seconds=1.5) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset, sleep_seconds=0.05))
        )
        final = await service.wait(created.backtest.name)
        assert final.state == pb.BACKTEST_STATE_FAILED
        assert "run timeout (1.5 s)" in final.error_message
        assert created.backtest.name.split("/")[1] not in worker_pids(service.app)


async def test_start_up_removes_result_staging_left_by_a_killed_worker(database_url, data_dir):
    runs = data_dir / "runs"
    stale = runs / ".0123abcd.x1y2z3"
    fresh = runs / ".4567efgh.a1b2c3"
    for directory in (stale, fresh):
        directory.mkdir(parents=True)
        (directory / "fills.parquet").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    async with running_service(database_url, data_dir):
        pass
    assert not stale.exists()
    assert fresh.exists()  # may belong to a worker of another replica writing right now
