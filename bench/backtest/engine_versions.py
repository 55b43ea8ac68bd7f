"""Engine versions: the same runs on NautilusTrader 1.221 / Python 3.11 and 1.231 / Python 3.12.

Run: `.venv/bin/python -m bench.backtest.engine_versions --before DIR [--ticks 1000000 5000000]
[--sweep-ticks 500000] [--sweep-workers 1]`

`--before` is this commit's parent with its own environment (1.221.0 on Python 3.11), e.g.:

    git archive HEAD^ | tar -x -C /tmp/engine-old && cd /tmp/engine-old
    UV_PROJECT_ENVIRONMENT=$PWD/.venv uv sync --frozen --all-packages --python python3.11
    bash scripts/codegen-python.sh

Every measurement runs in a fresh process of that tree's interpreter with that tree's code (the
`bench.backtest` helpers both trees have), before and after alternating so load on the shared
machine hits both alike:
- one EMA-cross run on 1-minute bars through the service with 1 worker, per tick count: the
  engine's seconds and ticks/s, the whole run (CreateBacktest to SUCCEEDED, watched over gRPC);
- the phases of one run, timed in process: worker start (a forkserver process with the pool's
  preload, to its strategy registry), data load (`load_engine`), engine, results (the result
  files and stats), with the CPU seconds of the load and of the run (engine and results: steadier
  than wall time on a shared machine); the whole run's rest is the service's (dispatch, pipes,
  database, watch polling);
- a sweep of 8 parameter sets through the pool: wall seconds and engine seconds per run.
Prints one table with after/before ratios and the whole run against the engine's own time (the
target: within 10 %).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

AFTER = Path(__file__).resolve().parents[2]

# Runs in the measured tree's interpreter; prints one JSON line. Uses only helpers both trees have.
CHILD = """
import asyncio, json, multiprocessing, sys, tempfile, threading, time
from dataclasses import replace
from pathlib import Path

what, ticks = sys.argv[1], int(sys.argv[2])


async def phases(ticks):
    import grpc
    from tapedeck.backtest.v1 import backtest_pb2_grpc
    from tapedeck_backtest import server
    from tapedeck_backtest.datasets.service import load_dataset_source
    from tapedeck_backtest.runs.domain import resolve_spec
    from tapedeck_backtest.runs.engine import RunJob, execute, load_engine, strategy_builder
    from tapedeck_backtest.runs.messages import spec_request
    from tapedeck_backtest.runs.workers import FORKSERVER_PRELOAD
    from tapedeck_backtest.settings import BacktestSettings
    from tapedeck_backtest.strategies import load_registry
    from tapedeck_common.database import session_factory
    from bench.backtest.runs import _base_spec, import_ticks, write_ticks

    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-versions-") as tmp:
        root = Path(tmp)
        write_ticks(root / "raw" / "ticks.parquet", ticks)
        settings = BacktestSettings(port=0, data_dir=root / "data", data_root=root / "raw", workers=0)
        app = await server.start(settings)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                dataset = await import_ticks(backtest_pb2_grpc.BacktestServiceStub(channel))
            request = spec_request(_base_spec(dataset), field="spec")
            async with session_factory(app.engine)() as session:
                source = await load_dataset_source(
                    session=session, catalog_dir=settings.resolved_catalog_dir,
                    dataset_id=request.dataset_id)
            spec = resolve_spec(request, source, load_registry(), field="spec")
        finally:
            await app.stop()
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
        starts = []
        for _ in range(2):  # the first also starts the forkserver, as the service's start does
            started = time.perf_counter()
            process = context.Process(target=strategy_builder, args=((),))
            process.start()
            process.join()
            starts.append(time.perf_counter() - started)
        job = RunJob("phases", source, spec, root / "out")
        cpu = time.process_time()
        loaded = load_engine(job)
        load_cpu = time.process_time() - cpu
        build = strategy_builder(())
        started, cpu = time.perf_counter(), time.process_time()
        stats = execute(loaded, job, build_strategy=build,
                        report=lambda _: None, cancel=threading.Event())
        total, total_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"worker_start": starts[1], "load": loaded.load_seconds, "load_cpu": load_cpu,
            "engine": stats.run_seconds, "results": total - stats.run_seconds,
            "run_cpu": total_cpu}


async def sweep(ticks, workers):
    from bench.backtest.runs import FAST_PERIODS, _pool_only, write_ticks
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-versions-") as tmp:
        root = Path(tmp)
        write_ticks(root / "raw" / "ticks.parquet", ticks)
        wall, rss, cpu, runs = await _pool_only(root, workers, FAST_PERIODS[:8])
    return {"wall": wall, "engine_per_run": sum(runs) / len(runs), "rss": rss}


async def single(ticks):
    from bench.backtest.single_run import _one
    engine, wall, rss = await _one(ticks, 1_000_000)
    return {"engine": engine, "wall": wall, "rss": rss}


if __name__ == "__main__":
    import platform, nautilus_trader
    if what == "phases":
        result = asyncio.run(phases(ticks))
    elif what == "sweep":
        result = asyncio.run(sweep(ticks, int(sys.argv[3])))
    else:
        result = asyncio.run(single(ticks))
    result["version"] = f"{nautilus_trader.__version__} / {platform.python_version()}"
    print(json.dumps(result))
"""


def _measure(tree: Path, *args: object) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [str(tree / ".venv/bin/python"), "-c", CHILD, *map(str, args)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree} {args}: {done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _row(name: str, before: float, after: float, unit: str = "s") -> str:
    return f"| {name} | {before:.2f} {unit} | {after:.2f} {unit} | {after / before:.2f}x |"


def main() -> None:
    """Parse arguments, measure both trees alternately, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the parent commit's tree")
    parser.add_argument("--ticks", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--sweep-ticks", type=int, default=500_000)
    parser.add_argument("--sweep-workers", type=int, default=1)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": AFTER}
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows: list[str] = []
    versions: dict[str, object] = {}
    for ticks in args.ticks:
        single: dict[str, dict[str, float]] = {}
        phases: dict[str, dict[str, float]] = {}
        for side, tree in trees.items():
            single[side] = _measure(tree, "single", ticks)  # type: ignore[assignment]
            phases[side] = _measure(tree, "phases", ticks)  # type: ignore[assignment]
            versions[side] = single[side]["version"]
            print(f"{side} {ticks:,}: {single[side]} {phases[side]}", flush=True)
        b, a = single["before"], single["after"]
        rows += [
            _row(f"{ticks:,} ticks: engine", b["engine"], a["engine"]),
            _row(
                f"{ticks:,} ticks: ticks/s (k)",
                ticks / b["engine"] / 1e3,
                ticks / a["engine"] / 1e3,
                "k",
            ),
            _row(f"{ticks:,} ticks: whole run", b["wall"], a["wall"]),
            _row(
                f"{ticks:,} ticks: whole run / engine",
                b["wall"] / b["engine"],
                a["wall"] / a["engine"],
                "x",
            ),
            _row(f"{ticks:,} ticks: worker peak RSS", b["rss"], a["rss"], "MB"),
        ]
        for phase in ("worker_start", "load", "load_cpu", "engine", "results", "run_cpu"):
            rows.append(
                _row(
                    f"{ticks:,} ticks, phases in process: {phase.replace('_', ' ')}",
                    phases["before"][phase],
                    phases["after"][phase],
                )
            )
    sweeps = {
        side: _measure(tree, "sweep", args.sweep_ticks, args.sweep_workers)
        for side, tree in trees.items()
    }
    rows += [
        _row(
            f"sweep of 8 x {args.sweep_ticks:,} ticks, {args.sweep_workers} worker(s): wall",
            sweeps["before"]["wall"],
            sweeps["after"]["wall"],
        ),  # type: ignore[arg-type]
        _row(
            "sweep: engine per run",
            sweeps["before"]["engine_per_run"],  # type: ignore[arg-type]
            sweeps["after"]["engine_per_run"],
        ),  # type: ignore[arg-type]
    ]
    print(
        f"\n| what | before ({versions['before']}) | after ({versions['after']}) | after/before |"
    )
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
