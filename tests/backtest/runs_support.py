"""Helpers for the runs, results and sweeps tests: small generated data, a real server, specs."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from google.protobuf.duration_pb2 import Duration

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.backtest.v1 import backtest_pb2_grpc
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest import server
from tapedeck_backtest.datasets.service import load_dataset_source
from tapedeck_backtest.runs.domain import resolve_spec
from tapedeck_backtest.runs.engine import RunJob
from tapedeck_backtest.runs.messages import spec_request
from tapedeck_backtest.runs.results import RESULT_FILES
from tapedeck_backtest.runs.workers import WorkerPool
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_backtest.strategies import load_registry
from tapedeck_common.database import session_factory
from tapedeck_common.runtime import ServiceApp
from tests.backtest.reference import BTCUSDT as INSTRUMENT

PERPETUAL = pb.Instrument(
    instrument_id="BTCUSDT-PERP.BINANCE",
    kind=pb.INSTRUMENT_KIND_PERPETUAL,
    base_currency="BTC",
    quote_currency="USDT",
    price_precision=2,
    size_precision=3,
    maker_fee="0.0002",
    taker_fee="0.0004",
)

# User strategies for the tests, loaded through BACKTEST_STRATEGY_PATHS like any user's:
# `slow_cross` sleeps on every bar so a run of a few thousand ticks lasts seconds (cancel, kill);
# `exploding` raises on its Nth bar (an engine error); `look_ahead_probe` writes, per bar, the
# engine clock, the latest bar's ts_event and close, and the latest trade's ts_event.
TEST_STRATEGIES = textwrap.dedent(
    '''
    """Strategies used by the runs tests."""

    import time

    from tapedeck_backtest.strategies.base import BarStrategyConfig
    from tapedeck_backtest.strategies.ema_cross import EMACross, EMACrossConfig
    from tapedeck_backtest.strategies.registry import (
        ParameterSpec,
        ParameterType,
        StrategyDefinition,
    )
    from tapedeck_backtest.strategies.base import BarStrategy


    class SlowCrossConfig(EMACrossConfig, frozen=True):
        sleep_seconds: float = 0.02


    class SlowCross(EMACross):
        def on_bar(self, bar):
            time.sleep(self.config.sleep_seconds)
            super().on_bar(bar)


    class ExplodingConfig(BarStrategyConfig, frozen=True):
        explode_at: int = 10


    class Exploding(BarStrategy):
        def __init__(self, config):
            super().__init__(config)
            self.bars = 0

        def on_start(self):
            self.load_instrument()
            self.subscribe_bars(self.config.bar_type)

        def on_bar(self, bar):
            self.bars += 1
            if self.bars >= self.config.explode_at:
                raise RuntimeError(f"boom at bar {self.bars}")


    class LookAheadProbeConfig(BarStrategyConfig, frozen=True):
        record_path: str = ""


    class LookAheadProbe(BarStrategy):
        """Records, at each bar, the engine clock and the latest bar and trade it can see."""

        def __init__(self, config):
            super().__init__(config)
            self.rows = []

        def on_start(self):
            self.load_instrument()
            self.subscribe_bars(self.config.bar_type)

        def on_bar(self, bar):
            latest = self.cache.bar(self.config.bar_type)
            trade = self.cache.trade_tick(self.config.instrument_id)
            self.rows.append(
                (
                    self.clock.timestamp_ns(),
                    latest.ts_event,
                    float(latest.close),
                    -1 if trade is None else trade.ts_event,
                )
            )

        def on_stop(self):
            with open(self.config.record_path, "w") as out:
                out.write("\\n".join(",".join(str(v) for v in row) for row in self.rows))
    '''
)

LOOK_AHEAD_PROBE = textwrap.dedent(
    """
    from tapedeck_test_strategies import *  # noqa

    TAPEDECK_STRATEGY = StrategyDefinition(
        id="look_ahead_probe",
        display_name="Look-ahead probe",
        description="Records what each bar lets it see, and when (tests).",
        strategy_path="tapedeck_test_strategies:LookAheadProbe",
        config_path="tapedeck_test_strategies:LookAheadProbeConfig",
        parameters=(
            ParameterSpec("record_path", "File to write.", ParameterType.STRING, ""),
        ),
    )
    """
)

SLOW_CROSS = textwrap.dedent(
    """
    from tapedeck_test_strategies import *  # noqa

    TAPEDECK_STRATEGY = StrategyDefinition(
        id="slow_cross",
        display_name="Slow EMA cross",
        description="EMA cross that sleeps on every bar (tests).",
        strategy_path="tapedeck_test_strategies:SlowCross",
        config_path="tapedeck_test_strategies:SlowCrossConfig",
        parameters=(
            ParameterSpec("sleep_seconds", "Sleep per bar.", ParameterType.DOUBLE, 0.02, 0.0, 1.0),
            ParameterSpec("trade_size", "Order size.", ParameterType.DOUBLE, 0.01, 1e-6, 10.0),
        ),
    )
    """
)

EXPLODING = textwrap.dedent(
    """
    from tapedeck_test_strategies import *  # noqa

    TAPEDECK_STRATEGY = StrategyDefinition(
        id="exploding",
        display_name="Exploding",
        description="Raises on its Nth bar (tests).",
        strategy_path="tapedeck_test_strategies:Exploding",
        config_path="tapedeck_test_strategies:ExplodingConfig",
        parameters=(
            ParameterSpec("explode_at", "Bar that raises.", ParameterType.INT, 10, 1, 100000),
        ),
    )
    """
)


def write_trades(path: Path, *, rows: int = 4000, seed: int = 7, step_seconds: int = 3) -> None:
    """Write a random-walk trades file (ts, price, size, side) with volatility clustering."""
    rng = np.random.default_rng(seed)
    volatility = 0.0006 * np.exp(np.cumsum(rng.normal(0, 0.05, rows)) * 0.3)
    price = 30_000 * np.exp(np.cumsum(rng.normal(0, 1, rows) * volatility))
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-03-01", periods=rows, freq=f"{step_seconds}s", tz="UTC"),
            "price": price.round(2),
            "size": rng.uniform(0.001, 0.2, rows).round(6),
            "side": np.where(rng.integers(0, 2, rows) == 1, "buy", "sell"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def write_test_strategies(directory: Path) -> Path:
    """Write the test strategies' modules into `directory` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    # The shared classes live in a module whose name starts with "_"-free text but is imported
    # by the two definition modules; it defines no TAPEDECK_STRATEGY itself.
    modules = {
        "tapedeck_test_strategies.py": TEST_STRATEGIES,
        "slow_cross.py": SLOW_CROSS,
        "exploding.py": EXPLODING,
        "look_ahead_probe.py": LOOK_AHEAD_PROBE,
    }
    for name, text in modules.items():
        path = directory / name
        if path.exists() and path.read_text() == text:
            continue
        # Whole or not at all: a worker of another service of this process may be importing it
        # (rewritten in place, it once read an empty slow_cross.py and lacked the strategy).
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(text)
        staging.replace(path)
    return directory


@dataclass
class Service:
    """A running backtest service and a stub to it."""

    app: ServiceApp
    stub: backtest_pb2_grpc.BacktestServiceStub
    data_dir: Path
    raw_dir: Path

    async def import_file(
        self, source_path: str, *, kind: int, instrument: pb.Instrument, bar_convention: int = 0
    ) -> pb.ImportDatasetResponse:
        """Import a file under the data root through ImportDataset; return the last message."""
        last = None
        async for message in self.stub.ImportDataset(
            pb.ImportDatasetRequest(
                source_path=source_path,
                kind=kind,  # type: ignore[arg-type]
                instrument=instrument,
                bar_convention=bar_convention,  # type: ignore[arg-type]
            )
        ):
            last = message
        assert last is not None
        return last

    async def watch_sweep(
        self, name: str, *, seconds: float = 240.0
    ) -> tuple[list[pb.WatchSweepResponse], pb.Sweep]:
        """Watch a sweep to its end: its result updates, then the final sweep."""
        updates, final = [], None
        request = pb.WatchSweepRequest(name=name)
        async for message in self.stub.WatchSweep(request, timeout=seconds):
            if message.WhichOneof("event") == "result":
                updates.append(message)
            else:
                final = message.sweep
        assert final is not None
        return updates, final

    async def import_trades(
        self, name: str = "trades.parquet", *, instrument: pb.Instrument = INSTRUMENT, **kwargs: int
    ) -> str:
        """Write a generated trades file, import it through ImportDataset, return its name."""
        write_trades(self.raw_dir / name, **kwargs)
        last = await self.import_file(name, kind=pb.DATA_KIND_TRADES, instrument=instrument)
        assert last.WhichOneof("event") == "dataset"
        return str(last.dataset.name)

    async def wait(self, name: str, *, seconds: float = 60.0) -> pb.Backtest:
        """Watch a run to its final state and return it."""
        final = None
        async for message in self.stub.WatchBacktest(
            pb.WatchBacktestRequest(name=name), timeout=seconds
        ):
            final = message.backtest
        assert final is not None
        return final


@asynccontextmanager
async def running_service(
    database_url: str,
    data_dir: Path,
    *,
    workers: int = 1,
    data_root: Path | None = None,
    live_address: str = "",
    **settings: object,
) -> AsyncIterator[Service]:
    """Start the backtest service in process with test strategies and a raw data root.

    Its run events go to `live_address`, a live service the test started; by default nowhere.
    """
    raw_dir = data_root if data_root is not None else data_dir / "raw"
    if data_root is None:
        raw_dir.mkdir(parents=True, exist_ok=True)
    # One directory per test process: the modules stay imported between tests (no shadowing).
    strategies = write_test_strategies(
        Path(tempfile.gettempdir()) / f"tapedeck-run-test-strategies-{os.getpid()}"
    )
    config = BacktestSettings(
        database_url=database_url,
        port=0,
        data_dir=data_dir,
        data_root=raw_dir,
        workers=workers,
        strategy_paths=(strategies,),
        live_address=live_address,
        shutdown_grace_seconds=0.5,
        **settings,  # type: ignore[arg-type]
    )
    app = await server.start(config)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Service(app, backtest_pb2_grpc.BacktestServiceStub(channel), data_dir, raw_dir)
    finally:
        await app.stop()


def ints(*values: int) -> list[pb.ParameterValue]:
    """Return whole-number parameter values."""
    return [pb.ParameterValue(int_value=v) for v in values]


def spec(
    dataset: str,
    *,
    strategy: str = "ema_cross",
    parameters: dict[str, pb.ParameterValue] | None = None,
    balances: tuple[tuple[str, str], ...] = (("USDT", "100000"),),
    account_type: int = pb.ACCOUNT_TYPE_CASH,
    bar_seconds: int = 60,
) -> pb.BacktestSpec:
    """Return a BacktestSpec over the whole dataset."""
    if parameters is None:
        parameters = {
            "fast_period": pb.ParameterValue(int_value=5),
            "slow_period": pb.ParameterValue(int_value=15),
            "trade_size": pb.ParameterValue(double_value=0.5),
        }
    return pb.BacktestSpec(
        dataset=dataset,
        strategy=f"strategies/{strategy}",
        parameters=parameters,
        starting_balances=[common_pb2.Money(currency=c, amount=a) for c, a in balances],
        account_type=account_type,  # type: ignore[arg-type]
        bar_interval=Duration(seconds=bar_seconds),
    )


def components(app: ServiceApp) -> server.BacktestComponents:
    """Return the running service's components."""
    assert isinstance(app.components, server.BacktestComponents)
    return app.components


def worker_pool(app: ServiceApp) -> WorkerPool:
    """Return the running service's worker pool."""
    pool = components(app).pool
    assert pool is not None
    return pool


def worker_pids(app: ServiceApp) -> dict[str, int]:
    """Return the pid of the worker process running each run."""
    return worker_pool(app).worker_pids()


async def worker_job(service: Service, request: pb.BacktestSpec, run_id: str, out: Path) -> RunJob:
    """Return the job a worker gets for this spec: the dataset's source and the resolved spec."""
    checked = spec_request(request, field="spec")
    async with session_factory(service.app.engine)() as session:
        source = await load_dataset_source(
            session=session,
            catalog_dir=service.app.settings.resolved_catalog_dir,
            dataset_id=checked.dataset_id,
        )
    spec = resolve_spec(checked, source, load_registry(), field="spec")
    return RunJob(run_id, source, spec, str(out))


async def run_in_child(script: str, job: RunJob, directory: Path, *, seconds: float) -> str:
    """Run `script` in a fresh interpreter (one engine per process) with the pickled job's path
    as its argument; return the last line it printed."""
    job_file = directory / f"{job.run_id}.pkl"
    job_file.write_bytes(pickle.dumps(job))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(job_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), seconds)
    assert child.returncode == 0, stderr.decode()[-2000:]
    return stdout.decode().strip().splitlines()[-1]


UUID = r"-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def assert_same_result_files(one: Path, other: Path) -> None:
    """Assert two runs wrote the same result files (but for run ids and wall times)."""
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (one, other)]
    for manifest in manifests:
        del manifest["run_id"], manifest["stats"]["run_seconds"]
    assert manifests[0] == manifests[1]
    for name in RESULT_FILES:
        tables = [pq.read_table(d / name).to_pandas() for d in (one, other)]
        if name == "positions.parquet":  # a closed netting position's id ends in a random uuid
            for table in tables:
                table["position_id"] = table["position_id"].str.replace(UUID, "", regex=True)
        assert tables[0].equals(tables[1]), name  # NaNs (indicator warm-up) compare equal


def comparable(stats: Any) -> Any:
    """Return a copy of a run's stats without its wall time (which differs between runs)."""
    copy = type(stats)()
    copy.CopyFrom(stats)
    copy.ClearField("run_seconds")
    return copy
