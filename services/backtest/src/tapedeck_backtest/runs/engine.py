"""One NautilusTrader BacktestEngine inside a worker process: load, run, write results.

Runs inside a worker process only (NautilusTrader configures logging once per process and allows
one engine per process). The window's data is fed to the engine through `add_data_iterator` as a
generator of chunks, sized to about `CHUNK_SECONDS` of engine time each: every time the engine
asks for the next chunk the generator reports progress and checks the cancel flag, so a cancel
stops a run within about a chunk, well under a second, at no cost per event (running the window
as many `run(start, end)` slices instead rescans the engine's data list from the start on every
slice, which is quadratic). A cancelled run ends cleanly (the generator stops early), so the
engine stays reusable. A worker keeps its loaded engine for the next run on the same data and
venue (a sweep's points): `reset()` keeps instruments, and the data stay in the worker's memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import LoggingConfig
from nautilus_trader.data.aggregation import BarAggregator
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Currency, Money
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer
from nautilus_trader.trading.config import StrategyFactory

from tapedeck_backtest import storage
from tapedeck_backtest.datasets.catalog import data_prefix, fixed128_to_float
from tapedeck_backtest.datasets.domain import (
    DataKind,
    DatasetSource,
    label_offset_ns,
    stored_bar_type,
)
from tapedeck_backtest.datasets.instruments import InstrumentKind
from tapedeck_backtest.runs import results
from tapedeck_backtest.runs import stats as stats_math
from tapedeck_backtest.runs import trades as round_trips
from tapedeck_backtest.runs.domain import AccountKind, RunProgress, RunSpec, Stats
from tapedeck_backtest.strategies import load_registry

CHUNK_SECONDS = 0.1
FIRST_CHUNK_EVENTS = 2_000
# Windows up to this many rows stay in a worker's memory between runs; larger ones stream.
DEFAULT_IN_MEMORY_ROWS = 1_000_000
STREAM_BATCH_ROWS = 50_000
MAX_CHUNK_EVENTS = 250_000
PROGRESS_INTERVAL_SECONDS = 0.2


class RunCancelled(Exception):
    """The run's cancel flag was set between two slices."""


class CancelFlag(Protocol):
    """What the engine polls between slices (a multiprocessing Event)."""

    def is_set(self) -> bool:
        """Tell whether cancel was requested."""
        ...


@dataclass(frozen=True)
class RunJob:
    """One run for a worker: where its data is, what to run, where its results go. Picklable."""

    run_id: str
    source: DatasetSource
    spec: RunSpec
    results_dir: str  # a local path or an fsspec URL (storage.py)
    in_memory_rows: int = DEFAULT_IN_MEMORY_ROWS

    @property
    def engine_key(self) -> str:
        """Identify the loaded engine this run can reuse: same data window and venue."""
        return json.dumps(
            [
                self.source.dataset_id,
                str(self.source.catalog_path),
                self.spec.start_ns,
                self.spec.end_ns,
                [[c, str(a)] for c, a in self.spec.starting_balances],
                self.spec.account_type.value,
            ]
        )


@dataclass(frozen=True)
class LoadedEngine:
    """An engine with one dataset window loaded, reusable across runs after `reset()`."""

    key: str
    engine: Any
    venue: Any
    batches: Callable[[], Iterator[list[Any]]]  # the window's data after the first element
    prices: results.PriceSeries
    minute_bars: results.Candles | None  # BARS datasets: the stored bars keyed by open time
    load_seconds: float

    def reset(self) -> None:
        """Drop the last run's state and strategies, keeping data and instruments."""
        self.engine.reset()
        self.engine.clear_strategies()
        _drop_run_subscriptions(self.engine)


def _drop_run_subscriptions(engine: Any) -> None:
    """Unsubscribe the last run's strategy and bar aggregators from the message bus.

    NautilusTrader's `reset()` and `clear_strategies()` leave them subscribed (1.221.0, and still
    1.231.0: tests/backtest/test_engine_reuse.py fails without this): every later run on the
    engine fed each trade to every earlier run's bar aggregator and each bar and order event to
    every earlier strategy (a sweep's 8th run took 35% longer). Upstream, bar aggregation across
    `reset()` is still open as nautechsystems/nautilus_trader#3096.
    """
    msgbus = engine.kernel.msgbus
    for subscription in msgbus.subscriptions():
        owner = getattr(subscription.handler, "__self__", None)
        if isinstance(owner, Actor | BarAggregator):
            msgbus.unsubscribe(subscription.topic, subscription.handler)


def load_engine(job: RunJob) -> LoadedEngine:
    """Build an engine for the job's venue and load the window's data into it."""

    started = time.perf_counter()
    source, spec = job.source, job.spec
    instrument = source.nautilus_instrument()
    if source.row_count <= job.in_memory_rows:
        # Small enough to keep: a sweep's later runs on this worker skip loading entirely.
        data = _query_catalog(source, spec)
        if not data:
            raise ValueError("the dataset holds no data in the run's time range")
        first = data[0]
        rest = data[1:]

        def batches() -> Iterator[list[Any]]:
            yield rest

    else:
        # Large: stream from the catalog's files on every run, so memory stays bounded.
        first_batch = next(_catalog_batches(source, spec), None)
        if not first_batch:
            raise ValueError("the dataset holds no data in the run's time range")
        first = first_batch[0]
        del first_batch

        def batches() -> Iterator[list[Any]]:
            stream = _catalog_batches(source, spec)
            for index, batch in enumerate(stream):
                yield batch[1:] if index == 0 else batch

    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR"), run_analysis=False)
    )
    venue = Venue(instrument.id.venue.value)
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH
        if spec.account_type is AccountKind.CASH
        else AccountType.MARGIN,
        base_currency=None,
        starting_balances=[
            Money(str(amount), Currency.from_str(currency))
            for currency, amount in spec.starting_balances
        ],
        trade_execution=source.kind is DataKind.TRADES,
        bar_execution=source.kind is DataKind.BARS,
    )
    engine.add_instrument(instrument)
    # The first element goes in through add_data, which registers the venue's market data
    # client and the subscriptions it serves; the rest streams through `_chunks` per run.
    # Sorted (a one-element list costs nothing): since 1.222 `run()` refuses data added with
    # `sort=False` until `sort_data()`, and `reset()` only re-feeds the data it holds as sorted.
    engine.add_data([first])
    prices, minute_bars = _price_series(source, spec, instrument.price_precision)
    return LoadedEngine(
        key=job.engine_key,
        engine=engine,
        venue=venue,
        batches=batches,
        prices=prices,
        minute_bars=minute_bars,
        load_seconds=time.perf_counter() - started,
    )


def execute(
    loaded: LoadedEngine,
    job: RunJob,
    *,
    build_strategy: Callable[[RunJob], Any],
    report: Callable[[RunProgress], None],
    cancel: CancelFlag,
) -> Stats:
    """Run the job on a loaded engine, reporting progress; raise RunCancelled on cancel."""
    engine, spec = loaded.engine, job.spec
    engine.add_strategy(build_strategy(job))
    started = time.perf_counter()
    span = max(spec.end_ns - spec.start_ns, 1)
    cancelled = False

    def chunks() -> Iterator[list[Any]]:
        nonlocal cancelled
        size = FIRST_CHUNK_EVENTS
        first = True
        last_report = asked = time.perf_counter()
        for batch in loaded.batches():
            offset = 0
            while offset < len(batch):
                now = time.perf_counter()
                if cancel.is_set():
                    cancelled = True
                    return  # the engine sees the end of its data and finishes cleanly
                if now - last_report >= PROGRESS_INTERVAL_SECONDS:
                    last_report = now
                    simulated = batch[offset].ts_init
                    report(
                        _progress(engine.iteration, now - started, simulated, spec.start_ns, span)
                    )
                # Size the next chunk from how long the engine took over the last one.
                if not first:
                    took = max(now - asked, 1e-6)
                    size = int(min(max(size * CHUNK_SECONDS / took, 100), MAX_CHUNK_EVENTS))
                first = False
                chunk = batch[offset : offset + size]
                offset += len(chunk)
                asked = time.perf_counter()
                yield chunk

    engine.add_data_iterator("tapedeck_run", chunks())
    engine.run(start=spec.start_ns, end=spec.end_ns - 1)  # half-open: nothing at end_ns
    if cancelled:
        raise RunCancelled
    report(
        _progress(engine.iteration, time.perf_counter() - started, spec.end_ns, spec.start_ns, span)
    )
    run_seconds = time.perf_counter() - started
    fills = results.fills_from_report(engine.trader.generate_fills_report())
    positions = engine.trader.generate_positions_report()
    account = engine.trader.generate_account_report(loaded.venue)
    trips = round_trips.round_trips(engine.cache)
    bars = loaded.minute_bars  # bar datasets: each price is a bar's close, with its range
    trades = round_trips.build(
        trips,
        price_times=loaded.prices.times,
        prices=loaded.prices.prices,
        highs=loaded.prices.prices if bars is None else bars.high,
        lows=loaded.prices.prices if bars is None else bars.low,
    )
    figures = _trade_figures(
        engine,
        loaded.venue,
        [trip.position for trip in trips],
        trades,
        job.source.instrument.quote_currency,
    )
    candles = _candles(loaded, spec.bar_interval_ns)
    instrument = job.source.instrument
    context = results.RunContext(
        run_id=job.run_id,
        instrument_id=job.source.instrument_id,
        quote_currency=instrument.quote_currency,
        base_currency=instrument.base_currency if _holds_base(job) else None,
        account_type=spec.account_type,
        starting_balances=spec.starting_balances,
        start_ns=spec.start_ns,
        end_ns=spec.end_ns,
        bar_interval_ns=spec.bar_interval_ns,
        run_seconds=run_seconds,
        periods_per_year=stats_math.periods_per_year(instrument.kind),
    )
    return results.write_results(
        directory=job.results_dir,
        context=context,
        prices=loaded.prices,
        candles=candles,
        fills=fills,
        positions_report=positions,
        account_report=account,
        trades=trades,
        trade_figures=figures,
    )


def _trade_figures(
    engine: Any, venue: Any, closed: list[Any], trades: list[Any], quote_currency: str
) -> stats_math.TradeFigures:
    analyzer = engine.portfolio.analyzer
    analyzer.calculate_statistics(engine.cache.account_for_venue(venue), closed)
    return stats_math.trade_figures(analyzer, trades, Currency.from_str(quote_currency))


def _holds_base(job: RunJob) -> bool:
    # A spot pair books the base currency in a CASH account; a perpetual never holds it.

    return job.source.instrument.kind is not InstrumentKind.PERPETUAL


def _progress(
    events: int, elapsed: float, simulated_ns: int, start_ns: int, span: int
) -> RunProgress:
    fraction = min(max((simulated_ns - start_ns) / span, 0.0), 1.0)
    rate = events / elapsed if elapsed > 0 else 0.0
    eta = elapsed * (1.0 - fraction) / fraction if fraction > 0 else 0.0
    return RunProgress(
        percent=100.0 * fraction,
        events_processed=events,
        events_per_second=rate,
        eta_seconds=eta,
        simulated_ns=simulated_ns,
    )


def _query_catalog(source: DatasetSource, spec: RunSpec) -> list[Any]:
    fs, path = storage.filesystem(source.catalog_path)
    catalog = ParquetDataCatalog(
        path,
        fs_protocol=storage.protocol(source.catalog_path),
        fs_storage_options=fs.storage_options,
        fs_rust_storage_options=storage.rust_storage_options(source.catalog_path),
    )
    low, last = spec.start_ns, spec.end_ns - 1  # the catalog's bounds are inclusive
    if source.kind is DataKind.TRADES:
        return list(catalog.trade_ticks(instrument_ids=[source.instrument_id], start=low, end=last))
    if source.kind is DataKind.QUOTES:
        return list(catalog.quote_ticks(instrument_ids=[source.instrument_id], start=low, end=last))
    return list(
        catalog.bars(bar_types=[stored_bar_type(source.instrument_id)], start=low, end=last)
    )


def _window_tables(
    source: DatasetSource, spec: RunSpec, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """Yield the window's rows from the catalog files as tables of about STREAM_BATCH_ROWS rows.

    Reads whole row groups with `read_row_groups` (skipping those outside the window by their
    ts_init statistics): `ParquetFile.iter_batches` and `Dataset.to_batches` keep memory for
    every row group already read until the reader is dropped (about 30 MB per million ticks).
    """
    prefix = data_prefix(source.kind, instrument_id=source.instrument_id)
    fs, directory = storage.filesystem(storage.join(source.catalog_path, prefix))
    low = pa.scalar(spec.start_ns, pa.uint64())
    high = pa.scalar(spec.end_ns, pa.uint64())  # excluded: the window is half-open
    for path in sorted(fs.glob(f"{directory}/*.parquet")):  # <first-ts>_<last-ts>: time order
        file = pq.ParquetFile(path, filesystem=fs)
        metadata = file.schema_arrow.metadata
        ts_index = file.schema_arrow.get_field_index("ts_init")
        groups: list[int] = []
        rows = 0
        last = file.metadata.num_row_groups - 1
        for index in range(last + 1):
            group = file.metadata.row_group(index)
            stats = group.column(ts_index).statistics
            outside = (
                stats is not None
                and stats.has_min_max
                and (stats.max < spec.start_ns or stats.min >= spec.end_ns)
            )
            if not outside:
                groups.append(index)
                rows += group.num_rows
            if groups and (rows >= STREAM_BATCH_ROWS or index == last):
                table = file.read_row_groups(groups, columns=columns, use_threads=False)
                groups, rows = [], 0
                times = table.column("ts_init")
                table = table.filter(pc.and_(pc.greater_equal(times, low), pc.less(times, high)))
                if table.num_rows:
                    yield table.replace_schema_metadata(metadata)
                del table, times


def _catalog_batches(source: DatasetSource, spec: RunSpec) -> Iterator[list[Any]]:
    """Yield the window's data objects batch by batch, in time order, from the catalog files."""
    data_cls = source.data_cls
    for table in _window_tables(source, spec):
        objects = ArrowSerializer.deserialize(data_cls=data_cls, batch=table)
        if "nautilus_pyo3" in type(objects[0]).__module__:
            objects = data_cls.from_pyo3_list(objects)
        del table
        yield objects


def _price_series(
    source: DatasetSource, spec: RunSpec, price_precision: int
) -> tuple[results.PriceSeries, results.Candles | None]:
    columns = {
        DataKind.TRADES: ["ts_init", "price", "size"],
        DataKind.QUOTES: ["ts_init", "bid_price", "ask_price"],
        DataKind.BARS: ["ts_init", "open", "high", "low", "close", "volume"],
    }[source.kind]
    # Decoded table by table into arrays sized up front: neither the whole Arrow table nor a
    # list of pieces to concatenate is ever held (5M ticks: 120 MB of arrays, nothing more).
    rows = sum(table.num_rows for table in _window_tables(source, spec, ["ts_init"]))
    times = np.empty(rows, dtype=np.int64)
    arrays = {name: np.empty(rows, dtype=np.float64) for name in columns[1:]}
    filled = 0
    for table in _window_tables(source, spec, columns):
        end = filled + table.num_rows
        times[filled:end] = table.column("ts_init").to_numpy()
        for name in columns[1:]:
            arrays[name][filled:end] = fixed128_to_float(table.column(name))
        filled = end
    if times.size > 1 and np.any(np.diff(times) < 0):
        order = np.argsort(times, kind="stable")
        times = times[order]
        arrays = {name: values[order] for name, values in arrays.items()}

    if source.kind is DataKind.TRADES:
        prices = _rounded(arrays["price"], price_precision)
        return results.PriceSeries(times, prices, arrays["size"]), None
    if source.kind is DataKind.QUOTES:
        mids = (arrays["bid_price"] + arrays["ask_price"]) / 2.0
        return results.PriceSeries(times, mids, np.zeros(times.size)), None
    closes = _rounded(arrays["close"], price_precision)
    bars = results.Candles(
        times=times - label_offset_ns(source.kind),  # stored at the close, labelled by the open
        open=_rounded(arrays["open"], price_precision),
        high=_rounded(arrays["high"], price_precision),
        low=_rounded(arrays["low"], price_precision),
        close=closes,
        volume=arrays["volume"],
    )
    return results.PriceSeries(times, closes, bars.volume), bars


def _rounded(
    values: np.ndarray[Any, np.dtype[np.float64]], precision: int
) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(np.round(values, precision), dtype=np.float64)


def _candles(loaded: LoadedEngine, interval_ns: int) -> results.Candles:
    if loaded.minute_bars is not None:
        return results.aggregate_candles(loaded.minute_bars, interval_ns=interval_ns)
    return results.candles_from_prices(loaded.prices, interval_ns=interval_ns)


def strategy_builder(strategy_paths: tuple[str, ...]) -> Callable[[RunJob], Any]:
    """Return a function building a run's strategy from the registry (user strategies included)."""

    registry = load_registry([Path(path) for path in strategy_paths])

    def build(job: RunJob) -> Any:
        config = registry.importable_config(
            job.spec.strategy_id,
            job.spec.parameters,
            instrument_id=job.source.instrument_id,
            bar_type=job.source.bar_type(job.spec.bar_interval_ns // 1_000_000_000),
        )
        return StrategyFactory.create(config)

    return build


def error_message(error: BaseException) -> str:
    """Return a one-line, bounded description of an engine error for the run's error_message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    message = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return message[:1000]
