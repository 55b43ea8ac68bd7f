"""Control-plane benchmark: queue transactions/s and progress writes/s on SQLite and PostgreSQL.

Run: `.venv/bin/python -m bench.backtest.control_plane [--runs 400] [--writers 1 8] [--seconds 3]`

What a Ray cluster of any size costs the backtest service does not depend on where the engines
run: per run, one claim transaction (the run moves QUEUED -> RUNNING with its `run_started`
event), a progress UPDATE every 0.25 s while it runs, and one finish transaction (with its
`run_ended` event). This measures those transactions through the service's own `RunQueue` on a
fresh database of each backend (PostgreSQL at 127.0.0.1:5432, a database created and dropped
here): the runs are real rows queued by CreateSweep through the real service, then claimed and
finished (as FAILED, which writes the same rows and event as SUCCEEDED) by `--writers` concurrent
pools, each its own owner, as replicas would. Prints for each backend and writer count:
claim+finish transactions/s and progress writes/s, and the runs in flight each rate can serve.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.runs.domain import RunProgress, RunState
from tapedeck_backtest.runs.queue import RunQueue
from tapedeck_common.database import is_postgres, session_factory
from tests.backtest.runs_support import Service, running_service, spec
from tests.support import postgres_database

PROGRESS_PER_SECOND = 4  # PROGRESS_WRITE_SECONDS = 0.25 s per running run


@asynccontextmanager
async def database(backend: str, directory: Path) -> AsyncIterator[str]:
    """Yield a fresh database URL of `backend`."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'control.db'}"
        return
    async with postgres_database() as url:
        yield url


async def queue_runs(service: Service, count: int) -> None:
    """Queue `count` runs as sweeps through the real service (API only: nothing executes them)."""
    stub = service.stub
    dataset = await service.import_trades(rows=2000)
    base = spec(dataset)
    queued, offset = 0, 0
    while queued < count:
        size = min(400, count - queued)
        fast = [pb.ParameterValue(int_value=2 + offset + i) for i in range(size // 20 or 1)]
        slow = [pb.ParameterValue(int_value=500 + i) for i in range(min(size, 20))]
        created = await stub.CreateSweep(
            pb.CreateSweepRequest(
                base_spec=base,
                axes=[
                    pb.ParameterAxis(name="fast_period", values=fast),
                    pb.ParameterAxis(name="slow_period", values=slow),
                ],
                metric=pb.RANK_METRIC_TOTAL_RETURN,
            )
        )
        queued += created.sweep.total_runs
        offset += len(fast)


async def measure(queue: RunQueue, writers: int, seconds: float) -> tuple[float, float]:
    """Return (claim+finish transactions/s, progress writes/s) with `writers` concurrent pools."""
    claimed: list[list[str]] = [[] for _ in range(writers)]
    transactions = 0
    stop = time.perf_counter() + seconds

    async def claim_and_finish(index: int) -> None:
        nonlocal transactions
        owner = f"bench-{index}"
        while time.perf_counter() < stop:
            run = await queue.claim(owner=owner)
            if run is None:
                return
            await queue.finish(
                run_id=run.id, owner=owner, state=RunState.FAILED, error_message="bench"
            )
            transactions += 2

    started = time.perf_counter()
    await asyncio.gather(*(claim_and_finish(i) for i in range(writers)))
    tx_rate = transactions / (time.perf_counter() - started)

    # Progress: each writer holds one claimed run and reports on it as fast as it can.
    for index in range(writers):
        run = await queue.claim(owner=f"bench-{index}")
        assert run is not None, "queue more runs (--runs)"
        claimed[index].append(run.id)
    writes = 0
    stop = time.perf_counter() + seconds

    async def report(index: int) -> None:
        nonlocal writes
        progress = RunProgress(percent=1.0, events_processed=1)
        while time.perf_counter() < stop:
            await queue.report(run_id=claimed[index][0], owner=f"bench-{index}", progress=progress)
            writes += 1

    started = time.perf_counter()
    await asyncio.gather(*(report(i) for i in range(writers)))
    return tx_rate, writes / (time.perf_counter() - started)


async def _main(runs: int, writer_counts: list[int], seconds: float) -> None:
    print(
        f"control plane: {runs} queued runs per measurement, {seconds:.0f} s per rate,"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    for backend in ("sqlite", "postgresql"):
        for writers in writer_counts:
            with tempfile.TemporaryDirectory(prefix="tapedeck-bench-control-") as tmp:
                root = Path(tmp)
                async with (
                    database(backend, root) as url,
                    running_service(url, root, workers=0) as service,
                ):
                    await queue_runs(service, runs)
                    engine = service.app.engine
                    queue = RunQueue(sessions=session_factory(engine), postgres=is_postgres(engine))
                    tx, writes = await measure(queue, writers, seconds)
            print(
                f"{backend:10} {writers} writer(s): {tx:7,.0f} queue transactions/s"
                f" (claim or finish), {writes:7,.0f} progress writes/s"
                f" -> runs in flight at one progress write per 0.25 s: {writes / PROGRESS_PER_SECOND:,.0f}"
            )


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the services' start-up notices, not results
    asyncio.run(_main(args.runs, args.writers, args.seconds))


if __name__ == "__main__":
    main()
