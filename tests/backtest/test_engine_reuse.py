"""A worker's reused engine: `reset()` leaves nothing of the last run subscribed."""

import asyncio
import json
import pickle
import sys
from pathlib import Path

from tapedeck_backtest.datasets.service import load_dataset_source
from tapedeck_backtest.runs.domain import resolve_spec
from tapedeck_backtest.runs.engine import RunJob
from tapedeck_backtest.runs.messages import spec_request
from tapedeck_backtest.strategies import load_registry
from tapedeck_common.database import session_factory
from tests.backtest.runs_support import running_service, spec

# Runs in a fresh interpreter: NautilusTrader allows one engine per process.
CHILD = """
import json, pickle, sys, threading
from dataclasses import replace
from nautilus_trader.common.actor import Actor
from nautilus_trader.data.aggregation import BarAggregator
from tapedeck_backtest.runs.engine import execute, load_engine, strategy_builder

job = pickle.loads(open(sys.argv[1], "rb").read())
build = strategy_builder(())
loaded = load_engine(job)
counts, stale, fills = [], [], []
for index in range(3):
    run = replace(job, run_id=f"run-{index}", results_dir=job.results_dir / str(index))
    stats = execute(loaded, run, build_strategy=build, report=lambda _: None,
                    cancel=threading.Event())
    fills.append(stats.fill_count)
    loaded.reset()
    subscriptions = loaded.engine.kernel.msgbus.subscriptions()
    counts.append(len(subscriptions))
    stale += [str(s.topic) for s in subscriptions
              if isinstance(getattr(s.handler, "__self__", None), Actor | BarAggregator)]
print(json.dumps([counts, stale, fills]))
"""


async def test_reset_unsubscribes_the_last_runs_strategy_and_bar_aggregator(
    tmp_path: Path, data_dir
):
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", data_dir, workers=0
    ) as service:
        dataset = await service.import_trades()
        request = spec_request(spec(dataset), field="spec")
        async with session_factory(service.app.engine)() as session:
            source = await load_dataset_source(
                session=session,
                catalog_dir=service.app.settings.resolved_catalog_dir,
                dataset_id=request.dataset_id,
            )
        resolved = resolve_spec(request, source, load_registry(), field="spec")
    job_file = tmp_path / "job.pkl"
    job_file.write_bytes(pickle.dumps(RunJob("reuse", source, resolved, tmp_path / "out")))

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(job_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), 120)

    assert child.returncode == 0, stderr.decode()[-2000:]
    counts, stale, fills = json.loads(stdout.decode().strip().splitlines()[-1])
    assert stale == []
    assert len(set(counts)) == 1  # nothing accumulates from run to run
    assert fills[0] > 0
    assert len(set(fills)) == 1  # and every run on the reused engine gives the same result
