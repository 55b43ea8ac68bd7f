"""Bar time conventions and half-open windows, on real data through a real engine.

The look-ahead probe (a user strategy, see runs_support) records at each bar the engine clock,
the latest bar and trade it can see; no bar may be visible before its close instant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tests.backtest.playback_support import time_range
from tests.backtest.reference import BTCUSDT, REAL
from tests.backtest.runs_support import Service, running_service, spec
from tests.support import missing_dependency

FXCM = "fxcm-gbpusd-m1-bid-2012.csv"
TRADES = "binance-btcusdt-trades.parquet"
MINUTE_NS = 60_000_000_000
GBPUSD = pb.Instrument(
    instrument_id="GBP/USD.FXCM",
    kind=pb.INSTRUMENT_KIND_FX,
    base_currency="GBP",
    quote_currency="USD",
    price_precision=5,
    size_precision=0,
)


def _require(name: str) -> None:
    if not (REAL / name).exists():
        missing_dependency(f"the shared real data at {REAL}")


def _nanos(text: str) -> int:
    return int(pd.Timestamp(text).value)


def _fxcm_rows() -> pd.DataFrame:
    raw = pd.read_csv(REAL / FXCM)
    raw["ts"] = pd.to_datetime(raw["timestamp"], utc=True).astype("int64")
    return raw


async def _import(service: Service, name: str, kind: int, instrument: pb.Instrument, **extra):
    last = None
    async for message in service.stub.ImportDataset(
        pb.ImportDatasetRequest(source_path=name, kind=kind, instrument=instrument, **extra)
    ):
        last = message
    assert last is not None
    assert last.WhichOneof("event") == "dataset"
    return last.dataset


async def _probe(
    service: Service,
    dataset: str,
    record: Path,
    window: common_pb2.TimeRange | None = None,
    currency: str = "USD",
    bar_seconds: int = 60,
) -> tuple[pb.Backtest, np.ndarray]:
    request = spec(
        dataset,
        strategy="look_ahead_probe",
        parameters={"record_path": pb.ParameterValue(string_value=str(record))},
        balances=((currency, "100000"),),
        bar_seconds=bar_seconds,
    )
    if window is not None:
        request.time_range.CopyFrom(window)
    created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
    run = await service.wait(created.backtest.name, seconds=240)
    assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
    rows = np.loadtxt(record, delimiter=",", dtype=np.float64, ndmin=2)
    return run, rows


async def test_bars_labelled_by_open_reach_the_engine_at_their_close_and_chart_as_the_file(
    tmp_path: Path, data_dir: Path
):
    _require(FXCM)
    raw = _fxcm_rows()
    start, end = _nanos("2012-02-06T00:00:00Z"), _nanos("2012-02-08T00:00:00Z")
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 't.db'}", data_dir, data_root=REAL
    ) as service:
        dataset = await _import(service, FXCM, pb.DATA_KIND_BARS, GBPUSD)  # default: bar open
        assert dataset.bar_convention == pb.BAR_CONVENTION_BAR_OPEN
        assert dataset.start_time.ToNanoseconds() == raw["ts"].iloc[0]  # the first bar's open
        assert dataset.end_time.ToNanoseconds() == raw["ts"].iloc[-1]
        run, seen = await _probe(service, dataset.name, tmp_path / "p.csv", time_range(start, end))
        candles = [
            c
            async for c in service.stub.StreamCandles(
                pb.StreamCandlesRequest(backtest=run.name, chunk_size=50_000)
            )
        ]
    clock, bar_close, close = seen[:, 0].astype(np.int64), seen[:, 1].astype(np.int64), seen[:, 2]
    # No bar is visible before its close: the row labelled t is seen at t + 1 minute, not before.
    assert np.all(clock >= bar_close)
    opens = raw["ts"].to_numpy()
    index = np.searchsorted(opens, bar_close - MINUTE_NS)
    assert np.array_equal(opens[index], bar_close - MINUTE_NS)
    assert np.allclose(raw["close"].to_numpy()[index], close)
    # The run holds the rows whose close is in [start, end): the window is half-open.
    inside = raw[(raw["ts"] + MINUTE_NS >= start) & (raw["ts"] + MINUTE_NS < end)]
    assert len(seen) == len(inside) == run.progress.events_processed
    # Candles are labelled by their open and equal the file's rows exactly.
    times = np.concatenate([np.array(c.chunk.times) for c in candles])
    assert np.array_equal(times, inside["ts"].to_numpy())
    for column in ("open", "high", "low", "close"):
        got = np.concatenate([np.array(getattr(c.chunk, column)) for c in candles])
        assert np.allclose(got, inside[column].to_numpy()), column


async def test_bars_labelled_by_close_keep_their_meaning_and_the_window_end_is_excluded(
    tmp_path: Path, data_dir: Path
):
    _require(FXCM)
    raw = _fxcm_rows()
    start, end = _nanos("2012-02-06T00:00:00Z"), _nanos("2012-02-07T00:00:00Z")
    half_open = int(((raw["ts"] >= start) & (raw["ts"] < end)).sum())
    # The file has a row at the end instant, so an inclusive end would count one more.
    assert int(((raw["ts"] >= start) & (raw["ts"] <= end)).sum()) == half_open + 1
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 't.db'}", data_dir, data_root=REAL
    ) as service:
        dataset = await _import(
            service, FXCM, pb.DATA_KIND_BARS, GBPUSD, bar_convention=pb.BAR_CONVENTION_BAR_CLOSE
        )
        assert dataset.bar_convention == pb.BAR_CONVENTION_BAR_CLOSE
        assert dataset.start_time.ToNanoseconds() == raw["ts"].iloc[0] - MINUTE_NS
        run, seen = await _probe(service, dataset.name, tmp_path / "p.csv", time_range(start, end))
    assert run.progress.events_processed == len(seen) == half_open
    clock, bar_close = seen[:, 0].astype(np.int64), seen[:, 1].astype(np.int64)
    assert np.all(clock >= bar_close)
    assert np.array_equal(np.sort(bar_close), raw["ts"][(raw["ts"] >= start) & (raw["ts"] < end)])


async def test_bars_of_trade_ticks_are_never_visible_before_their_close(
    tmp_path: Path, data_dir: Path
):
    _require(TRADES)
    trades = pd.read_parquet(REAL / TRADES)
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 't.db'}", data_dir, data_root=REAL
    ) as service:
        dataset = await _import(service, TRADES, pb.DATA_KIND_TRADES, BTCUSDT)
        assert dataset.bar_convention == pb.BAR_CONVENTION_UNSPECIFIED  # ticks have none
        # The file spans 46 seconds of trades: one-second bars.
        run, seen = await _probe(
            service, dataset.name, tmp_path / "p.csv", currency="USDT", bar_seconds=1
        )
    clock, bar_close = seen[:, 0].astype(np.int64), seen[:, 1].astype(np.int64)
    close, last_trade = seen[:, 2], seen[:, 3].astype(np.int64)
    assert len(seen) > 5
    assert np.all(clock >= bar_close)
    assert np.all(bar_close % 1_000_000_000 == 0)  # a one-second bar closes on the second
    assert np.all(last_trade <= clock)
    # Each bar's close is the last trade before its close instant: nothing later leaked in.
    times = trades["timestamp"].astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    prices = trades["price"].to_numpy()
    last_before = np.searchsorted(times, bar_close, side="right") - 1
    assert np.allclose(prices[last_before], close)
    assert run.progress.events_processed == len(trades)


async def test_a_whole_dataset_run_window_holds_every_row_and_asking_for_it_equals_unset(
    tmp_path: Path, data_dir: Path
):
    _require(FXCM)
    raw = _fxcm_rows()
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 't.db'}", data_dir, data_root=REAL
    ) as service:
        dataset = await _import(service, FXCM, pb.DATA_KIND_BARS, GBPUSD)
        request = spec(
            dataset.name,
            balances=(("USD", "100000"),),
            account_type=pb.ACCOUNT_TYPE_MARGIN,
            parameters={
                "fast_period": pb.ParameterValue(int_value=10),
                "slow_period": pb.ParameterValue(int_value=30),
                "trade_size": pb.ParameterValue(double_value=10000),
                "allow_short": pb.ParameterValue(bool_value=True),
            },
        )
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
        run = await service.wait(created.backtest.name, seconds=240)
        assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
        window = run.spec.time_range
        # From the first bar's open to just after the last bar's close (its ts_event + 1 ns).
        assert window.start_time.ToNanoseconds() == raw["ts"].iloc[0]
        assert window.end_time.ToNanoseconds() == raw["ts"].iloc[-1] + MINUTE_NS + 1
        assert run.progress.events_processed == len(raw)
        assert run.stats.fill_count > 10
        answers = []
        for asked in (None, window):
            extra = {} if asked is None else {"time_range": asked}
            candles = [
                (list(c.chunk.times), list(c.chunk.close))
                async for c in service.stub.StreamCandles(
                    pb.StreamCandlesRequest(backtest=run.name, chunk_size=50_000, **extra)
                )
            ]
            equity = [
                (list(c.chunk.times), list(c.chunk.equity))
                async for c in service.stub.StreamEquity(
                    pb.StreamEquityRequest(backtest=run.name, chunk_size=100_000, **extra)
                )
            ]
            fills = await service.stub.ListFills(
                pb.ListFillsRequest(backtest=run.name, page_size=10_000, **extra)
            )
            answers.append((candles, equity, list(fills.fills)))
    assert answers[0] == answers[1]
    candles, equity, fills = answers[0]
    assert sum(len(times) for times, _ in candles) == len(raw)
    assert len(fills) == run.stats.fill_count
