"""Run benchmark: N backtests one after another in one process vs the service's worker pool.

Run: `.venv/bin/python -m bench.backtest.runs [--ticks 500000] [--runs 4] [--workers 2]
[--baseline process|pool]`

Generates trade ticks (a random walk with volatility clustering, 100 ms apart), imports them
through the real service, then measures in this same run the same N EMA-cross runs (different
parameters, same data):
- baseline `process` (default): one fresh process loads the data once and runs the N backtests
  sequentially (engine reset between runs), the best a single process can do;
- baseline `pool`: the same sweep through the service with 1 worker process (the issue's
  "2 workers vs 1": `--runs 8 --workers 2 --baseline pool`);
- pool: the service (in process, SQLite) with `--workers` worker processes, the N runs created as
  one sweep and watched to the end through gRPC (queue, dispatch, result files, database included).
Worker processes are started and the dataset imported before the clock starts; each side's time
includes the workers' data load, the runs and the result files. Prints seconds, ticks/s, each
side's peak worker RSS, the service process's CPU seconds, the load average, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.backtest.reference import BTCUSDT
from tests.backtest.runs_support import worker_pool

FAST_PERIODS = (5, 8, 10, 12, 15, 20, 25, 30)


def write_ticks(path: Path, ticks: int) -> None:
    """Write generated trade ticks (ts, price, size, side), 100 ms apart."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    # Volatility clustering: log-volatility is a mean-reverting AR(1) around 2 bp per tick,
    # stepped per block of 100 ticks so the recursion stays short.
    blocks = ticks // 100 + 1
    shocks = rng.normal(0, 0.15, blocks)
    log_vol = np.empty(blocks)
    level = 0.0
    for index in range(blocks):
        level = 0.98 * level + shocks[index]
        log_vol[index] = level
    volatility = 0.0002 * np.exp(np.repeat(log_vol, 100)[:ticks])
    price = 40_000 * np.exp(np.cumsum(rng.normal(0, 1, ticks) * volatility))
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-02", periods=ticks, freq="100ms", tz="UTC"),
            "price": price.round(2),
            "size": rng.uniform(0.001, 0.5, ticks).round(6),
            "side": np.where(rng.integers(0, 2, ticks) == 1, "buy", "sell"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


async def import_ticks(stub: Any) -> str:
    """Import raw/ticks.parquet as BTCUSDT.BINANCE trades through ImportDataset; return its name."""
    from tapedeck.backtest.v1 import backtest_pb2 as pb

    dataset = ""
    async for message in stub.ImportDataset(
        pb.ImportDatasetRequest(
            source_path="ticks.parquet",
            kind=pb.DATA_KIND_TRADES,
            instrument=BTCUSDT,
        )
    ):
        dataset = message.dataset.name or dataset
    assert dataset
    return str(dataset)


def _sequential(jobs: list[Any], results: Any) -> None:
    """Child process: load once, run every job back to back, report seconds and peak RSS."""
    import threading

    from tapedeck_backtest.runs.engine import execute, load_engine, strategy_builder

    started = time.perf_counter()
    build = strategy_builder(())
    loaded = load_engine(jobs[0])
    engine_seconds = []
    for job in jobs:
        stats = execute(
            loaded, job, build_strategy=build, report=lambda _: None, cancel=threading.Event()
        )
        engine_seconds.append(stats.run_seconds)
        loaded.reset()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    results.put((time.perf_counter() - started, rss, loaded.load_seconds, engine_seconds))


def _base_spec(dataset: str) -> Any:
    from google.protobuf.duration_pb2 import Duration

    from tapedeck.backtest.v1 import backtest_pb2 as pb
    from tapedeck.common.v1 import common_pb2

    return pb.BacktestSpec(
        dataset=dataset,
        strategy="strategies/ema_cross",
        parameters={
            "slow_period": pb.ParameterValue(int_value=40),
            "trade_size": pb.ParameterValue(double_value=0.1),
        },
        starting_balances=[common_pb2.Money(currency="USDT", amount="1000000")],
        account_type=pb.ACCOUNT_TYPE_CASH,
        bar_interval=Duration(seconds=60),
    )


async def _sweep(stub: Any, base: Any, periods: tuple[int, ...]) -> tuple[float, list[float]]:
    """Run one sweep over fast_period through the service; return its wall seconds and runs'."""
    from tapedeck.backtest.v1 import backtest_pb2 as pb

    started = time.perf_counter()
    created = await stub.CreateSweep(
        pb.CreateSweepRequest(
            base_spec=base,
            axes=[
                pb.ParameterAxis(
                    name="fast_period",
                    values=[pb.ParameterValue(int_value=p) for p in periods],
                )
            ],
            metric=pb.RANK_METRIC_SHARPE_RATIO,
        )
    )
    final = None
    async for message in stub.WatchSweep(pb.WatchSweepRequest(name=created.sweep.name)):
        if message.WhichOneof("event") == "sweep":
            final = message.sweep
    wall = time.perf_counter() - started
    assert final is not None
    failed = [r for r in final.results if r.state != pb.BACKTEST_STATE_SUCCEEDED]
    assert not failed, failed
    return wall, [r.stats.run_seconds for r in final.results]


async def _pool_only(
    root: Path,
    workers: int,
    periods: tuple[int, ...],
    attempt: int = 0,
    *,
    label: str = "",
    before_sweep: Callable[[], None] | None = None,
    **more: Any,
) -> tuple[float, float, float, list[float]]:
    """Start a service with `workers` processes (started before timing), time one sweep.

    `more` are further service settings (the executor and its cluster, storage); `label` tells
    apart the data directories of sides with the same executor; `before_sweep` is called once
    the dataset is imported, just before the clock starts.
    """
    import grpc

    from tapedeck.backtest.v1 import backtest_pb2_grpc
    from tapedeck_backtest import server
    from tapedeck_backtest.settings import BacktestSettings

    settings = BacktestSettings(
        port=0,
        data_dir=root / f"data-{workers}-{attempt}-{more.get('executor', 'local')}{label}",
        data_root=root / "raw",
        workers=workers,
        live_address="",  # no live service: run events stay in the outbox
        **more,
    )
    app = await server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = backtest_pb2_grpc.BacktestServiceStub(channel)
            dataset = await import_ticks(stub)
            if before_sweep is not None:
                before_sweep()
            cpu = time.process_time()
            wall, run_seconds = await _sweep(stub, _base_spec(dataset), periods)
            cpu = time.process_time() - cpu
            rss = max(worker_pool(app).peak_rss_mb().values(), default=0.0)
    finally:
        await app.stop()
    return wall, rss, cpu, run_seconds


async def _pools(ticks: int, runs: int, workers: int, repeat: int) -> None:
    """The issue's case: the same sweep through the real pool with 1 worker and with `workers`.

    With `repeat` > 1 the two alternate (1, N, 1, N, ...) so a burst of other load on the shared
    machine hits both sides alike; the ratio is printed of the best and of the median times.
    """
    periods = FAST_PERIODS[:runs]
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-runs-") as tmp:
        root = Path(tmp)
        write_ticks(root / "raw" / "ticks.parquet", ticks)
        print(f"sweep: {runs} EMA-cross parameter sets x {ticks:,} trade ticks, 1-minute bars")
        walls: dict[int, list[float]] = {1: [], workers: []}
        for attempt in range(repeat):
            for size in (1, workers):
                load = os.getloadavg()[0]
                wall, rss, cpu, run_seconds = await _pool_only(root, size, periods, attempt)
                walls[size].append(wall)
                print(
                    f"pool {size} worker(s): {wall:7.2f} s ({ticks * runs / wall:,.0f} ticks/s,"
                    f" engine {sum(run_seconds) / runs:.2f} s per run,"
                    f" peak worker RSS {rss:.0f} MB, service process CPU {cpu:.2f} s,"
                    f" load average before {load:.2f})"
                )
    one, many = walls[1], walls[workers]
    print(f"speed-up  1 worker / {workers} workers: best {min(one) / min(many):.2f}x", end="")
    print(f", median {statistics.median(one) / statistics.median(many):.2f}x" if repeat > 1 else "")


async def _main(ticks: int, runs: int, workers: int) -> None:
    import grpc

    from tapedeck.backtest.v1 import backtest_pb2_grpc
    from tapedeck_backtest import server
    from tapedeck_backtest.datasets.service import load_dataset_source
    from tapedeck_backtest.runs.domain import resolve_spec
    from tapedeck_backtest.runs.engine import RunJob
    from tapedeck_backtest.runs.messages import spec_request
    from tapedeck_backtest.settings import BacktestSettings
    from tapedeck_backtest.strategies import load_registry
    from tapedeck_common.database import session_factory

    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-runs-") as tmp:
        root = Path(tmp)
        write_ticks(root / "raw" / "ticks.parquet", ticks)
        settings = BacktestSettings(
            port=0,
            data_dir=root / "data",
            data_root=root / "raw",
            workers=workers,
            live_address="",  # no live service: run events stay in the outbox
        )
        app = await server.start(settings)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = backtest_pb2_grpc.BacktestServiceStub(channel)
                dataset = await import_ticks(stub)
                base = _base_spec(dataset)
                periods = FAST_PERIODS[:runs]

                # Baseline: the same runs, sequential, in one fresh process.
                request = spec_request(base, field="spec")
                async with session_factory(app.engine)() as session:
                    source = await load_dataset_source(
                        session=session,
                        catalog_dir=settings.resolved_catalog_dir,
                        dataset_id=request.dataset_id,
                    )
                jobs = []
                for index, fast in enumerate(periods):
                    point = replace(request, parameters={**request.parameters, "fast_period": fast})
                    spec = resolve_spec(point, source, load_registry(), field="spec")
                    jobs.append(
                        RunJob(f"baseline-{index}", source, spec, root / "baseline" / str(index))
                    )
                context = multiprocessing.get_context("forkserver")
                queue = context.Queue()
                process = context.Process(target=_sequential, args=(jobs, queue))
                started = time.perf_counter()
                process.start()
                (
                    baseline_seconds,
                    baseline_rss,
                    load_seconds,
                    baseline_runs,
                ) = await asyncio.to_thread(queue.get)
                baseline_wall = time.perf_counter() - started
                process.join()

                # The pool: one sweep over the same parameter values.
                pool_wall, pool_runs = await _sweep(stub, base, periods)
                pool_rss = max(worker_pool(app).peak_rss_mb().values(), default=0.0)
        finally:
            await app.stop()
    total_ticks = ticks * runs
    print(f"runs: {runs} EMA-cross backtests x {ticks:,} trade ticks, 1-minute bars")
    print(
        f"baseline  1 process sequential: {baseline_wall:7.2f} s"
        f"  ({total_ticks / baseline_wall:,.0f} ticks/s, in-process {baseline_seconds:.2f} s,"
        f" peak RSS {baseline_rss:.0f} MB)"
    )
    print(
        f"pool      {workers} worker processes:  {pool_wall:7.2f} s"
        f"  ({total_ticks / pool_wall:,.0f} ticks/s, peak worker RSS {pool_rss:.0f} MB)"
    )
    print(
        f"engine seconds per run: baseline {sum(baseline_runs) / runs:.2f},"
        f" pool {sum(pool_runs) / runs:.2f} (data load once per process: {load_seconds:.2f} s)"
    )
    print(f"speed-up  baseline / pool: {baseline_wall / pool_wall:.2f}x")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=4, choices=range(1, len(FAST_PERIODS) + 1))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=1, help="with --baseline pool: measure each side N times"
    )
    parser.add_argument(
        "--baseline",
        choices=("process", "pool"),
        default="process",
        help="process: one process sequential (default); pool: the service with 1 worker",
    )
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.baseline == "pool":
        asyncio.run(_pools(args.ticks, args.runs, args.workers, args.repeat))
    else:
        asyncio.run(_main(args.ticks, args.runs, args.workers))
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
