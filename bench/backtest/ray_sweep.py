"""Ray benchmark: one sweep on the local worker pool vs the same sweep on a two-node Ray cluster.

Run: `.venv/bin/python -m bench.backtest.ray_sweep [--ticks 500000] [--runs 16] [--repeat 1]`

In the same run, on this machine: the service (in process, SQLite) with 2 local worker processes,
then with BACKTEST_EXECUTOR=ray on a Ray cluster of two single-CPU nodes started here on 127.0.0.1
(tests/backtest/ray_support.py: only those processes are ended after). Each side runs the same
sweep of `--runs` EMA-cross parameter sets over `--ticks` generated trade ticks, created through
CreateSweep and watched to the end through gRPC (queue, dispatch, result files, database
included). Prints each side's wall seconds, Ray's overhead against the local pool, the per-run
cost of a fresh Ray worker process (empty tasks with max_calls=1), the catalog bytes a run reads
(what a node fetches from shared storage per run), and the control plane's own rates on this
database: progress writes/s and empty claims/s (one transaction each, one replica).
"""

from __future__ import annotations

import os

# Before Ray is imported (by the service): every Ray process of this benchmark on 127.0.0.1.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import ray

from bench.backtest.runs import _pool_only, write_ticks
from tests.backtest.ray_support import ray_cluster

WORKERS = 2


def _noop() -> int:
    return os.getpid()


def wait_for_nodes(address: str, count: int) -> None:
    """Wait until the cluster has `count` live nodes (the timing needs both)."""
    ray.init(address=address, log_to_driver=False)
    try:
        deadline = time.monotonic() + 120
        while len([n for n in ray.nodes() if n["Alive"]]) < count:
            assert time.monotonic() < deadline, "the Ray nodes did not all join"
            time.sleep(0.5)
    finally:
        ray.shutdown()


def fresh_process_seconds(address: str, tasks: int) -> float:
    """Return the mean wall seconds of an empty one-CPU task in a fresh process (2 in flight)."""
    ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, max_calls=1)(_noop)
        ray.get([task.remote() for _ in range(WORKERS)])  # warm the nodes
        started = time.perf_counter()
        pids = ray.get([task.remote() for _ in range(tasks)])
        assert len(set(pids)) == tasks, "every task had a process of its own"
        return (time.perf_counter() - started) * WORKERS / tasks
    finally:
        ray.shutdown()


async def control_plane_rates(data_dir: Path, seconds: float = 2.0) -> tuple[float, float]:
    """Return progress writes/s and empty claims/s of one replica on a service's database."""
    from tapedeck_backtest.runs.domain import RunProgress
    from tapedeck_backtest.runs.queue import RunQueue
    from tapedeck_backtest.settings import BacktestSettings
    from tapedeck_common.database import create_engine, is_postgres, session_factory

    engine = create_engine(BacktestSettings(data_dir=data_dir), service="backtest")
    try:
        queue = RunQueue(sessions=session_factory(engine), postgres=is_postgres(engine))
        rates = []
        for step in (
            lambda: queue.report(run_id="bench", owner="bench", progress=RunProgress()),
            lambda: queue.claim(owner="bench"),
        ):
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                await step()
                count += 1
            rates.append(count / (time.perf_counter() - started))
    finally:
        await engine.dispose()
    return rates[0], rates[1]


async def _main(ticks: int, runs: int, repeat: int) -> None:
    periods = tuple(range(5, 5 + runs))
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-ray-") as tmp, ray_cluster() as cluster:
        root = Path(tmp)
        write_ticks(root / "raw" / "ticks.parquet", ticks)
        await asyncio.to_thread(wait_for_nodes, cluster.address, WORKERS)
        print(f"sweep: {runs} EMA-cross parameter sets x {ticks:,} trade ticks, 1-minute bars")
        walls: dict[str, list[float]] = {"local": [], "ray": []}
        for attempt in range(repeat):
            for executor in ("local", "ray"):
                load = os.getloadavg()[0]
                wall, _, cpu, run_seconds = await _pool_only(
                    root, WORKERS, periods, attempt, executor=executor, ray_address=cluster.address
                )
                walls[executor].append(wall)
                print(
                    f"{executor:5} ({WORKERS} {'processes' if executor == 'local' else 'nodes'}):"
                    f" {wall:7.2f} s ({ticks * runs / wall:,.0f} ticks/s,"
                    f" engine {sum(run_seconds) / runs:.2f} s per run,"
                    f" service process CPU {cpu:.2f} s, load average before {load:.2f})"
                )
        local, remote = min(walls["local"]), min(walls["ray"])
        print(f"Ray overhead vs the local pool: {(remote / local - 1) * 100:+.1f}% (best of each)")
        if repeat > 1:
            ratio = statistics.median(walls["ray"]) / statistics.median(walls["local"])
            print(f"                        median: {(ratio - 1) * 100:+.1f}%")
        print(f"per run, Ray wall minus local wall: {(remote - local) * WORKERS / runs:.3f} s")
        fresh = await asyncio.to_thread(fresh_process_seconds, cluster.address, 16)
        print(f"per run, an empty task in a fresh Ray worker process: {fresh:.3f} s")
        catalog = sum(
            f.stat().st_size
            for f in (root / f"data-{WORKERS}-0-ray" / "catalog").rglob("*")
            if f.is_file()
        )
        print(f"catalog bytes a run reads: {catalog / 1e6:.1f} MB ({catalog / ticks:.1f} B/tick)")
        writes, claims = await control_plane_rates(root / f"data-{WORKERS}-0-ray")
        print(
            f"control plane, one replica on SQLite: {writes:,.0f} progress writes/s,"
            f" {claims:,.0f} claims/s"
        )


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(_main(args.ticks, args.runs, args.repeat))


if __name__ == "__main__":
    main()
