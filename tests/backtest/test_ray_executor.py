"""Runs and sweeps on a real Ray cluster (a head and a second node on 127.0.0.1).

The backtest service stays the control plane: the same gRPC calls, states, progress and results
as with local workers; only the engines run as Ray tasks. One cluster serves the module (starting
one costs seconds of this machine's two cores); the test that kills a node runs last.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import ray

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.runs.ray_executor import EngineProcesses, RayExecutor
from tests.backtest.ray_support import SECOND_RESOURCE, RayCluster, ray_cluster
from tests.backtest.runs_support import (
    Service,
    assert_same_result_files,
    comparable,
    running_service,
    spec,
    worker_pool,
)
from tests.backtest.test_runs import running_with_progress, slow_spec
from tests.backtest.test_storage import on_s3, played_back
from tests.s3_support import S3Server
from tests.support import eventually

# Starting a cluster on this shared machine can take minutes; the first test pays for it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster(s3: S3Server) -> Iterator[RayCluster]:
    # Every node finds the object store through its own environment, as on a team's cluster.
    with ray_cluster(env=s3.env) as started:
        yield started


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    # The executor does not touch the database: the queue tests cover both backends.
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


def ray_service(cluster: RayCluster, url: str, data_dir: Path, **settings: object):  # type: ignore[no-untyped-def]
    return running_service(
        url, data_dir, workers=2, executor="ray", ray_address=cluster.address, **settings
    )


def executor(service: Service) -> RayExecutor:
    found = worker_pool(service.app).executor
    assert isinstance(found, RayExecutor)
    return found


def nodes_up(cluster: RayCluster) -> Callable[[], Awaitable[bool]]:
    async def both_nodes_alive() -> bool:
        for node in cluster.nodes:
            node.check()
        alive = [node for node in ray.nodes() if node["Alive"]]
        assert {node["NodeManagerAddress"] for node in alive} == {"127.0.0.1"}
        return len(alive) == 2

    return both_nodes_alive


def cpus_free(count: int) -> Callable[[], Awaitable[bool]]:
    async def free() -> bool:
        return ray.available_resources().get("CPU", 0) >= count

    return free


def second_node_id() -> str:
    (node,) = [n for n in ray.nodes() if n["Alive"] and SECOND_RESOURCE in n["Resources"]]
    return str(node["NodeID"])


def process_ended(pid: int | None) -> Callable[[], Awaitable[bool]]:
    assert pid is not None

    async def ended() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    return ended


async def test_a_ray_workers_engine_process_serves_the_same_data_only_and_not_for_ever():
    processes = EngineProcesses()
    first = processes.take("dataset-a", ())
    processes.keep(first, idle_seconds=None)
    assert processes.take("dataset-a", ()) is first, "the next run on the same data reuses it"
    processes.keep(first, idle_seconds=None)

    first_pid = first.pid
    second = processes.take("dataset-b", ())  # other data: one engine per process
    assert second is not first
    await eventually(process_ended(first_pid), timeout=5, message="the first process ended")
    second_pid = second.pid
    processes.keep(second, idle_seconds=0.3)
    await eventually(process_ended(second_pid), timeout=5, message="the idle process ended")

    third = processes.take("dataset-b", ())
    assert third is not second
    processes.keep(third, idle_seconds=None)
    third_pid = third.pid
    fourth = processes.take("dataset-b", ("other/strategies",))  # other strategies: fresh
    assert fourth is not third
    await eventually(process_ended(third_pid), timeout=5, message="the third process ended")
    fourth.stop(graceful=False)
    fourth.close()


async def test_a_run_on_ray_gives_the_fills_stats_and_files_of_the_same_local_run(
    cluster, sqlite_url, tmp_path
):
    finished = {}
    for executor_name in ("local", "ray"):
        data_dir = tmp_path / executor_name
        data_dir.mkdir()
        url = f"sqlite+aiosqlite:///{data_dir / 'test.db'}"
        settings = {"executor": executor_name, "ray_address": cluster.address}
        async with running_service(url, data_dir, workers=1, **settings) as service:
            dataset = await service.import_trades()
            created = await service.stub.CreateBacktest(
                pb.CreateBacktestRequest(spec=spec(dataset))
            )
            final = await service.wait(created.backtest.name)
            assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
            assert final.progress.percent == pytest.approx(100.0)
            finished[executor_name] = (final, data_dir / "runs" / final.name.split("/")[1])
    (local, local_dir), (remote, remote_dir) = finished["local"], finished["ray"]
    assert remote.stats.fill_count > 0
    assert comparable(remote.stats) == comparable(local.stats)
    assert remote.progress.events_processed == local.progress.events_processed
    assert_same_result_files(remote_dir, local_dir)


async def test_a_sweep_of_eight_runs_spreads_over_both_nodes(cluster, sqlite_url, data_dir):
    async with ray_service(cluster, sqlite_url, data_dir) as service:
        await eventually(nodes_up(cluster), timeout=60, message="two Ray nodes")
        dataset = await service.import_trades()
        # Runs of about a second (a sleep per bar), long enough to be seen running on their node.
        created = await service.stub.CreateSweep(
            pb.CreateSweepRequest(
                base_spec=slow_spec(dataset),
                axes=[
                    pb.ParameterAxis(
                        name="sleep_seconds",
                        values=[pb.ParameterValue(double_value=v / 1000) for v in range(3, 11)],
                    )
                ],
                metric=pb.RANK_METRIC_TOTAL_RETURN,
            )
        )
        assert created.sweep.total_runs == 8
        nodes: set[str] = set()
        pids: set[int] = set()

        async def watch_nodes() -> None:
            while True:
                nodes.update(executor(service).running_nodes().values())
                pids.update(worker_pool(service.app).worker_pids().values())
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch_nodes())
        results, final = [], None
        try:
            async for message in service.stub.WatchSweep(
                pb.WatchSweepRequest(name=created.sweep.name), timeout=240
            ):
                if message.WhichOneof("event") == "result":
                    results.append(message.result)
                else:
                    final = message.sweep
        finally:
            watcher.cancel()
        assert final is not None
        assert final.state == pb.SWEEP_STATE_SUCCEEDED
        assert len(results) == 8
        assert all(r.state == pb.BACKTEST_STATE_SUCCEEDED for r in results)
        assert [r.rank for r in final.results] == list(range(1, 9))
        alive = {str(n["NodeID"]) for n in ray.nodes() if n["Alive"]}
        assert nodes == alive, "every node ran some of the sweep's runs"
        # A node's engine process ran its next runs on the same data, as a local worker does.
        assert 0 < len(pids) < 8, pids


async def test_a_run_on_ray_with_s3_storage_plays_back_from_the_bucket(
    cluster, s3, tmp_path, monkeypatch
):
    # The service finds the bucket through its environment; the nodes through theirs (cluster).
    for variable, value in s3.env.items():
        monkeypatch.setenv(variable, value)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"sqlite+aiosqlite:///{data_dir / 'test.db'}"
    async with ray_service(cluster, url, data_dir, **on_s3(s3)) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        final = await service.wait(created.backtest.name, seconds=240)
        assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
        playback = await played_back(service, final.name)
    assert len(playback["fills"]) == final.stats.fill_count > 0
    assert sum(len(chunk.times) for chunk in playback["candles"]) > 0
    assert playback["states"][-1].fill_count <= final.stats.fill_count
    # The task read the catalog from the bucket and wrote its results there.
    assert not (data_dir / "catalog").exists()
    assert not (data_dir / "runs").exists()


async def test_cancel_stops_the_remote_engine_within_two_seconds(cluster, sqlite_url, data_dir):
    async with ray_service(cluster, sqlite_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset))
        )
        name = created.backtest.name
        run_id = name.split("/")[1]
        # WatchBacktest shows a remote run's progress as it does a local one's.
        running = await running_with_progress(service, name)
        assert 0 < running.progress.percent < 100
        pids = worker_pool(service.app).worker_pids()
        pid = pids[run_id]

        reply = await service.stub.CancelBacktest(pb.CancelBacktestRequest(name=name))
        assert reply.backtest.state == pb.BACKTEST_STATE_CANCELLED

        async def engine_stopped() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return run_id not in executor(service).running_nodes()

        await eventually(engine_stopped, timeout=2.0, message="the remote engine to stop")
        final = await service.wait(name)
        assert final.state == pb.BACKTEST_STATE_CANCELLED
        assert final.progress.percent < 100
        assert not (data_dir / "runs" / run_id).exists()


async def test_a_lost_channel_actor_comes_back_and_the_pool_goes_on(cluster, sqlite_url, data_dir):
    # The actor that carries progress and cancel flags lives on a node that can be lost (its
    # process killed, its node dead): Ray restarts it, the run in flight ends as it would have,
    # and the next run's progress (which only the channel carries while it runs) and cancel go
    # through the same handle.
    async with ray_service(cluster, sqlite_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset, sleep_seconds=0.05))
        )
        name = created.backtest.name
        await running_with_progress(service, name)
        channel = executor(service).channel
        ray.kill(channel, no_restart=False)

        final = await service.wait(name, seconds=120)
        assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
        assert final.progress.percent == 100
        assert executor(service).channel is channel

        second = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset, sleep_seconds=0.2))
        )
        await running_with_progress(service, second.backtest.name)
        await service.stub.CancelBacktest(pb.CancelBacktestRequest(name=second.backtest.name))
        cancelled = await service.wait(second.backtest.name, seconds=60)
        assert cancelled.state == pb.BACKTEST_STATE_CANCELLED
        assert cancelled.progress.percent < 100


async def test_killing_the_node_of_a_run_fails_it_with_the_reason(cluster, sqlite_url, data_dir):
    async with ray_service(cluster, sqlite_url, data_dir, run_max_attempts=1) as service:
        await eventually(nodes_up(cluster), timeout=60, message="two Ray nodes")
        second = second_node_id()
        dataset = await service.import_trades()
        # Both CPUs free as the cluster sees them (the pool's warm-up tasks and the earlier
        # tests' work released), so the two runs, one CPU each, go one to a node.
        await eventually(cpus_free(2), timeout=60, message="both nodes' CPUs free")
        names = []
        for sleep in (0.02, 0.021):
            created = await service.stub.CreateBacktest(
                pb.CreateBacktestRequest(spec=slow_spec(dataset, sleep_seconds=sleep))
            )
            names.append(created.backtest.name)

        async def run_on_second_node() -> str:
            placed = executor(service).running_nodes()
            for run_id, node in placed.items():
                if node == second:
                    return run_id
            states = {}
            for name in names:
                run = (await service.stub.GetBacktest(pb.GetBacktestRequest(name=name))).backtest
                states[name] = f"{pb.BacktestState.Name(run.state)} {run.error_message}".strip()
                if run.state in (pb.BACKTEST_STATE_FAILED, pb.BACKTEST_STATE_CANCELLED):
                    raise RuntimeError(f"{name} ended before the kill: {states[name]}")
            if all("SUCCEEDED" in state for state in states.values()):
                raise RuntimeError(f"both runs ended before one ran on node 2: {placed}")
            free = ray._private.state.available_resources_per_node()
            raise AssertionError(f"runs {states}, placed {placed}, free per node {free}")

        victim = await eventually(run_on_second_node, timeout=120, message="a run on node 2")
        await running_with_progress(service, f"backtests/{victim}")
        cluster.nodes[1].kill()

        final = await service.wait(f"backtests/{victim}", seconds=120)
        assert final.state == pb.BACKTEST_STATE_FAILED
        assert "the Ray task failed" in final.error_message
        assert "during the run" in final.error_message
        (survivor,) = [n for n in names if n != f"backtests/{victim}"]
        other = await service.wait(survivor, seconds=120)
        assert other.state == pb.BACKTEST_STATE_SUCCEEDED, other.error_message
