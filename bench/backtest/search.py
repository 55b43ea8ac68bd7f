"""Search benchmark: TPE vs random vs grid at the same trial budget, on the real BTC perpetual
one-minute bars, through the real service (SQLite), on the local worker pool and, with --ray, on a
Ray cluster of two single-CPU nodes started here on 127.0.0.1, in the same run.

Run: `.venv/bin/python -m bench.backtest.search [--budget 30] [--seeds 3] [--workers 2] [--ray]`

The space is EMA cross's fast period (2 to 30) and slow period (40 to 160) in whole numbers on
5-minute bars, ranked by Sharpe ratio (every point valid, so a grid can cover it). The grid baseline spends the same budget on an evenly spaced grid (about
sqrt(budget) values per axis). Each sampler runs once per seed; the table prints, per sampler, the
best Sharpe found (mean and worst over seeds), trials per minute (a repeated point reuses its
run), and how much better TPE's best is than random's and the grid's, measured in this same run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path

from bench.backtest.ray_sweep import wait_for_nodes
from tapedeck.backtest.v1 import backtest_pb2 as pb
from tests.backtest.ray_support import ray_cluster
from tests.backtest.reference import BTC_PERP_BARS, BTCUSDT_PERP, REAL
from tests.backtest.runs_support import Service, running_service, spec

FAST = (2, 30)
SLOW = (40, 160)


async def import_bars(service: Service) -> str:
    """Import the real bars and return the dataset's name."""
    last = await service.import_file(BTC_PERP_BARS, kind=pb.DATA_KIND_BARS, instrument=BTCUSDT_PERP)
    return str(last.dataset.name)


def base_spec(dataset: str) -> pb.BacktestSpec:
    return spec(
        dataset,
        account_type=pb.ACCOUNT_TYPE_MARGIN,
        bar_seconds=300,
        parameters={
            "trade_size": pb.ParameterValue(double_value=0.5),
            "allow_short": pb.ParameterValue(bool_value=True),
        },
    )


def grid_axes(budget: int) -> list[pb.ParameterAxis]:
    per_axis = max(2, math.isqrt(budget))

    def spread(low: int, high: int) -> list[pb.ParameterValue]:
        values = sorted({round(low + (high - low) * i / (per_axis - 1)) for i in range(per_axis)})
        return [pb.ParameterValue(int_value=v) for v in values]

    return [
        pb.ParameterAxis(name="fast_period", values=spread(*FAST)),
        pb.ParameterAxis(name="slow_period", values=spread(*SLOW)),
    ]


def range_axes() -> list[pb.ParameterAxis]:
    return [
        pb.ParameterAxis(name="fast_period", range=pb.ParameterRange(low=FAST[0], high=FAST[1])),
        pb.ParameterAxis(name="slow_period", range=pb.ParameterRange(low=SLOW[0], high=SLOW[1])),
    ]


async def sweep(service: Service, request: pb.CreateSweepRequest) -> tuple[float, int, float]:
    """Run a sweep to its end: (best Sharpe, trials, seconds)."""
    started = time.perf_counter()
    created = await service.stub.CreateSweep(request)
    _, final = await service.watch_sweep(created.sweep.name, seconds=3600)
    seconds = time.perf_counter() - started
    sharpes = [
        r.stats.sharpe_ratio
        for r in final.results
        if r.state == pb.BACKTEST_STATE_SUCCEEDED and math.isfinite(r.stats.sharpe_ratio)
    ]
    return max(sharpes, default=math.nan), len(final.results), seconds


async def samplers(
    budget: int, seeds: int, workers: int, **settings: object
) -> dict[str, list[tuple[float, int, float]]]:
    """Run the grid and every seed of random and TPE on one executor: per sampler, its sweeps."""
    results: dict[str, list[tuple[float, int, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        data_dir.mkdir()
        async with running_service(
            f"sqlite+aiosqlite:///{scratch}/bench.db",
            data_dir,
            workers=workers,
            data_root=REAL,
            **settings,
        ) as service:
            dataset = await import_bars(service)
            grid = pb.CreateSweepRequest(
                base_spec=base_spec(dataset),
                axes=grid_axes(budget),
                metric=pb.RANK_METRIC_SHARPE_RATIO,
            )
            results["grid"] = [await sweep(service, grid)]
            for name, algorithm in (
                ("random", pb.SEARCH_ALGORITHM_RANDOM),
                ("tpe", pb.SEARCH_ALGORITHM_TPE),
            ):
                for seed in range(seeds):
                    request = pb.CreateSweepRequest(
                        base_spec=base_spec(dataset),
                        axes=range_axes(),
                        metric=pb.RANK_METRIC_SHARPE_RATIO,
                        search=pb.SearchSpec(
                            algorithm=algorithm,
                            trial_budget=budget,
                            parallel_trials=workers,
                            seed=seed,
                        ),
                    )
                    results.setdefault(name, []).append(await sweep(service, request))
    return results


def report(executor: str, results: dict[str, list[tuple[float, int, float]]]) -> dict[str, float]:
    """Print one executor's table; return trials per minute per sampler."""
    print(f"{executor}:")
    print(f"  {'sampler':<8} {'best Sharpe (mean)':>19} {'worst seed':>11} {'trials/min':>11}")
    means, rates = {}, {}
    for name, rows in results.items():
        best = [row[0] for row in rows]
        means[name] = statistics.fmean(best)
        rates[name] = sum(row[1] for row in rows) / sum(row[2] for row in rows) * 60
        print(f"  {name:<8} {means[name]:>19.4f} {min(best):>11.4f} {rates[name]:>11.1f}")
    # Sharpe ratios can be negative, so the comparison is a difference, not a ratio.
    print(f"  TPE best - random best: {means['tpe'] - means['random']:+.4f} Sharpe")
    print(f"  TPE best - grid best:   {means['tpe'] - means['grid']:+.4f} Sharpe")
    return rates


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also run on a two-node Ray cluster")
    args = parser.parse_args()
    print(
        f"budget {args.budget} trials, {args.seeds} seeds, {args.workers} workers, {BTC_PERP_BARS}"
    )
    local = report("local pool", await samplers(args.budget, args.seeds, args.workers))
    if not args.ray:
        return
    with ray_cluster() as cluster:
        await asyncio.to_thread(wait_for_nodes, cluster.address, 2)
        on_ray = await samplers(
            args.budget, args.seeds, 2, executor="ray", ray_address=cluster.address
        )
    ray = report("Ray, 2 single-CPU nodes", on_ray)
    for name in local:
        print(f"{name}: Ray trials/min / local pool's = {ray[name] / local[name]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
