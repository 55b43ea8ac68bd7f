"""Engine versions: the same runs on NautilusTrader 1.221 / Python 3.11 and 1.231 / Python 3.12.

Run: `.venv/bin/python -m bench.backtest.engine_versions --before DIR [--ticks 1000000 5000000]
[--sweep-ticks 500000] [--sweep-workers 1] [--between DIR] [--repeat N]`

`--before` is this commit's parent with its own environment (1.221.0 on Python 3.11), e.g.:

    git archive <parent> | tar -x -C /tmp/engine-old && cd /tmp/engine-old
    UV_PROJECT_ENVIRONMENT=$PWD/.venv uv sync --frozen --all-packages --python python3.11
    bash scripts/codegen-python.sh

`--between` (optional) is the same tree on Python 3.12 (its `requires-python` set to 3.12, then
`uv lock` and `uv sync --python python3.12`: NautilusTrader 1.221.0 has 3.12 wheels too); it
splits the change into Python's part (between/before) and the release's (after/between).

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
`--repeat N` alternates the trees N times and keeps each figure's best. Prints one table with
the ratios and the whole run's time outside the engine against the target (within 10 %).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
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
    from tapedeck_backtest.runs.executors import FORKSERVER_PRELOAD
    from tapedeck_backtest.settings import BacktestSettings
    from tapedeck_backtest.strategies import load_registry
    from tapedeck_common.database import session_factory
    from bench.backtest.runs import _base_spec, import_ticks, write_ticks

    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-versions-") as tmp:
        root = Path(tmp)
        write_ticks(root / "raw" / "ticks.parquet", ticks)
        settings = BacktestSettings(
            port=0,
            data_dir=root / "data",
            data_root=root / "raw",
            workers=0,
            live_address="",  # no live service: run events stay in the outbox
        )
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


def _best(runs: list[dict[str, object]]) -> dict[str, float]:
    """Each figure's best (lowest) over the repeats; RSS and the version from the first."""
    return {
        key: min(float(run[key]) for run in runs)  # type: ignore[arg-type]
        for key, value in runs[0].items()
        if isinstance(value, int | float)
    }


def main() -> None:
    """Parse arguments, measure the trees alternately, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the parent commit's tree")
    parser.add_argument(
        "--between",
        type=Path,
        help="optional: the parent's code and NautilusTrader on the new Python (1.221 on 3.12),"
        " which splits the change into Python's part and the release's",
    )
    parser.add_argument("--ticks", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--sweep-ticks", type=int, default=500_000)
    parser.add_argument("--sweep-workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="measure N times, keep the best")
    args = parser.parse_args()
    trees = {"before": args.before.resolve()}
    if args.between:
        trees["between"] = args.between.resolve()
    trees["after"] = AFTER
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    table: dict[str, dict[str, float]] = {}
    versions: dict[str, object] = {}

    def measure(*what: object) -> dict[str, dict[str, float]]:
        runs: dict[str, list[dict[str, object]]] = {side: [] for side in trees}
        for _ in range(args.repeat):
            for side, tree in trees.items():
                runs[side].append(_measure(tree, *what))
                versions[side] = runs[side][-1]["version"]
                print(f"{side} {what}: {runs[side][-1]}", flush=True)
        return {side: _best(side_runs) for side, side_runs in runs.items()}

    for ticks in args.ticks:
        single, phases = measure("single", ticks), measure("phases", ticks)
        for side in trees:
            run, phase = single[side], phases[side]
            figures = {
                "engine (s)": run["engine"],
                "engine ticks/s (k)": ticks / run["engine"] / 1e3,
                "whole run (s)": run["wall"],
                "whole run outside the engine (% of engine; target 10)": 100
                * (run["wall"] - run["engine"])
                / run["engine"],
                "worker peak RSS (MB)": run["rss"],
                "phase: worker start (s)": phase["worker_start"],
                "phase: data load (s)": phase["load"],
                "phase: engine (s)": phase["engine"],
                "phase: results (s)": phase["results"],
                "phase: data load, CPU (s)": phase["load_cpu"],
                "phase: engine and results, CPU (s)": phase["run_cpu"],
            }
            for name, value in figures.items():
                table.setdefault(f"{ticks:,} ticks: {name}", {})[side] = value
    sweeps = measure("sweep", args.sweep_ticks, args.sweep_workers)
    sweep = f"sweep of 8 x {args.sweep_ticks:,} ticks, {args.sweep_workers} worker(s)"
    for side in trees:
        table.setdefault(f"{sweep}: wall (s)", {})[side] = sweeps[side]["wall"]
        table.setdefault(f"{sweep}: engine per run (s)", {})[side] = sweeps[side]["engine_per_run"]

    sides = list(trees)
    ratios = [(b, a) for b, a in itertools.pairwise(sides)]
    if len(sides) > 2:
        ratios.append(("before", "after"))
    print("\n| what | " + " | ".join(f"{s} ({versions[s]})" for s in sides), end=" | ")
    print(" | ".join(f"{a}/{b}" for b, a in ratios) + " |")
    print("|---" * (1 + len(sides) + len(ratios)) + "|")
    for name, values in table.items():
        cells = [f"{values[s]:,.2f}" for s in sides]
        cells += [f"{values[a] / values[b]:.2f}x" if values[b] else "-" for b, a in ratios]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
