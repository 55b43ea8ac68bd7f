"""A worker's reused engine: `reset()` leaves nothing of the last run subscribed."""

import json
from pathlib import Path

from tests.backtest.runs_support import run_in_child, running_service, spec, worker_job

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
    run = replace(job, run_id=f"run-{index}", results_dir=f"{job.results_dir}/{index}")
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
        job = await worker_job(service, spec(dataset), "reuse", tmp_path / "out")
    last_line = await run_in_child(CHILD, job, tmp_path, seconds=120)
    counts, stale, fills = json.loads(last_line)
    assert stale == []
    assert len(set(counts)) == 1  # nothing accumulates from run to run
    assert fills[0] > 0
    assert len(set(fills)) == 1  # and every run on the reused engine gives the same result
