"""A finished run's result files agree with its stats, with NautilusTrader's books and with the
indicators' definitions (computed here by hand, not by the library the writer calls)."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.runs import stats
from tapedeck_backtest.runs.results import RESULT_FILES, Candles, ResultFiles, indicators
from tests.backtest.runs_support import PERPETUAL, running_service, spec

MINUTE_NS = 60_000_000_000


@pytest.fixture
async def finished(tmp_path: Path, data_dir: Path) -> tuple[pb.Backtest, Path, Path]:
    """One finished EMA-cross run on a SQLite service: the run, its result dir, the raw file."""
    async with running_service(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", data_dir) as service:
        dataset = await service.import_trades()
        request = spec(dataset, balances=(("USDT", "100000"),))
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
        run = await service.wait(created.backtest.name)
    assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
    return run, data_dir / "runs" / run.name.split("/")[1], data_dir / "raw" / "trades.parquet"


def table(directory: Path, name: str) -> pd.DataFrame:
    return pq.read_table(directory / name).to_pandas()


async def test_equity_ends_at_starting_balance_plus_pnl_and_matches_the_engine_books(finished):
    run, directory, _ = finished
    portfolio = table(directory, "portfolio.parquet")
    account = table(directory, "account.parquet")
    fills = table(directory, "fills.parquet")
    equity = table(directory, "equity.parquet")

    starting, ending = Decimal(run.stats.starting_equity), Decimal(run.stats.ending_equity)
    assert starting == Decimal("100000")
    assert ending == starting + Decimal(run.stats.pnl)
    assert run.stats.total_return == pytest.approx(float(ending / starting - 1), rel=1e-12)

    # Our cash after the last fill is NautilusTrader's own final balance, to the last digit.
    last = portfolio.iloc[-1]
    final_books = account.groupby("currency").last()
    assert Decimal(last["cash_dec"]) == Decimal(final_books.loc["USDT", "total"])
    assert Decimal(last["base_balance_dec"]) == Decimal(final_books.loc["BTC", "total"])

    # Accounting identity: ending = starting + realized + unrealized - fees.
    last_mark = Decimal(repr(float(equity["mark"].iloc[-1])))
    unrealized = Decimal(last["position_dec"]) * (last_mark - Decimal(last["average_price_dec"]))
    realized, fees = Decimal(last["realized_pnl_dec"]), Decimal(last["fees_dec"])
    assert ending == starting + realized + unrealized - fees
    assert Decimal(run.stats.fees) == fees

    # Fills add up to the positions, and the counts agree everywhere.
    assert len(fills) == len(portfolio) == run.stats.fill_count > 0
    signed = sum(
        Decimal(q) if s == "BUY" else -Decimal(q) for q, s in fills[["quantity", "side"]].values
    )
    assert signed == Decimal(last["position_dec"])
    assert fills["time"].is_monotonic_increasing
    assert equity["time"].is_monotonic_increasing
    assert equity["equity"].iloc[-1] == pytest.approx(float(ending), rel=1e-12)
    assert (equity["kind"] == 1).sum() == len(fills)


async def test_the_manifest_describes_the_run_and_its_files(finished):
    run, directory, _ = finished
    files = ResultFiles(directory)
    assert files.exists()
    manifest = files.manifest()
    window = run.spec.time_range
    assert manifest == {
        "format": "tapedeck-run-results/1",
        "run_id": run.name.removeprefix("backtests/"),
        "instrument_id": "BTCUSDT.BINANCE",
        "quote_currency": "USDT",
        "base_currency": "BTC",
        "account_type": "CASH",
        "bar_interval_ns": MINUTE_NS,
        "start_ns": window.start_time.ToNanoseconds(),
        "end_ns": window.end_time.ToNanoseconds(),
        "starting_balances": [["USDT", "1E+5"]],  # as the resolved spec holds it
        "rows": {name: pq.read_metadata(directory / name).num_rows for name in RESULT_FILES},
        "equity_formula": {
            "CASH": "cash + base_balance * mark",
            "MARGIN": "cash + base_balance * mark + position * (mark - average_price)",
        },
        "stats": manifest["stats"],  # checked field by field below
    }
    assert manifest["rows"]["fills.parquet"] == run.stats.fill_count > 0
    stored = manifest["stats"]
    for name in ("pnl", "fees", "starting_equity", "ending_equity", "fill_count", "trade_count"):
        assert stored[name] == getattr(run.stats, name), name
    for name in ("total_return", "max_drawdown", "exposure"):
        assert stored[name] == pytest.approx(getattr(run.stats, name), rel=1e-15), name
    assert stored["sharpe_ratio"] is None  # n/a: a run of hours has no daily figures
    assert (
        files.table("equity.parquet", columns=["time"]).num_rows
        == manifest["rows"]["equity.parquet"]
    )


# --- the indicators' definitions, in plain Python (None during warm-up) ---

Series = list[float | None]


def sma(values: list[float], n: int) -> Series:
    return [None] * (n - 1) + [
        sum(values[i - n + 1 : i + 1]) / n for i in range(n - 1, len(values))
    ]


def ema(values: list[float], n: int, *, seed_at: int | None = None) -> Series:
    """Exponential average (k = 2 / (n + 1)) seeded with the simple average of n values."""
    seed_at = n - 1 if seed_at is None else seed_at
    out: Series = [None] * len(values)
    previous = sum(values[seed_at - n + 1 : seed_at + 1]) / n
    out[seed_at] = previous
    for i in range(seed_at + 1, len(values)):
        previous = (values[i] - previous) * 2 / (n + 1) + previous
        out[i] = previous
    return out


def rsi(closes: list[float], n: int = 14) -> Series:
    """Wilder's RSI: simple averages of the first n gains and losses, then Wilder smoothing."""
    changes = [closes[i] - closes[i - 1] for i in range(1, len(closes))]
    gain = sum(max(c, 0.0) for c in changes[:n]) / n
    loss = sum(max(-c, 0.0) for c in changes[:n]) / n
    out: Series = [None] * n + [100 * gain / (gain + loss)]
    for change in changes[n:]:
        gain = (gain * (n - 1) + max(change, 0.0)) / n
        loss = (loss * (n - 1) + max(-change, 0.0)) / n
        out.append(100 * gain / (gain + loss))
    return out


def atr(high: list[float], low: list[float], close: list[float], n: int = 14) -> Series:
    """Wilder's average true range, seeded with the simple average of the first n true ranges."""
    true_range = [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        for i in range(1, len(close))
    ]
    average = sum(true_range[:n]) / n
    out: Series = [None] * n + [average]
    for value in true_range[n:]:
        average = (average * (n - 1) + value) / n
        out.append(average)
    return out


def macd(closes: list[float]) -> tuple[Series, Series, Series]:
    """MACD 12/26/9 as TA-Lib defines it: both averages seeded where the slow one starts (26th
    value), the signal an EMA 9 of the line, all three lines from the signal's first value."""
    fast, slow = ema(closes, 12, seed_at=25), ema(closes, 26, seed_at=25)
    line = [None if s is None or f is None else f - s for f, s in zip(fast, slow, strict=True)]
    signal: Series = [None] * 25 + ema([v for v in line[25:] if v is not None], 9)
    line = [None if s is None else v for v, s in zip(line, signal, strict=True)]
    histogram = [
        None if s is None or v is None else v - s for v, s in zip(line, signal, strict=True)
    ]
    return line, signal, histogram


def bollinger(closes: list[float], n: int = 20, k: float = 2.0) -> tuple[Series, Series, Series]:
    """Simple average of n closes +- k population standard deviations (divided by n, not n - 1)."""
    middle = sma(closes, n)
    upper: Series = [None] * len(closes)
    lower: Series = [None] * len(closes)
    for i in range(n - 1, len(closes)):
        mean = middle[i]
        assert mean is not None
        deviation = math.sqrt(sum((x - mean) ** 2 for x in closes[i - n + 1 : i + 1]) / n)
        upper[i], lower[i] = mean + k * deviation, mean - k * deviation
    return upper, middle, lower


def reference_indicators(
    high: list[float], low: list[float], close: list[float]
) -> dict[str, Series]:
    line, signal, histogram = macd(close)
    upper, middle, lower = bollinger(close)
    return {
        "sma_20": sma(close, 20),
        "sma_50": sma(close, 50),
        "ema_20": ema(close, 20),
        "rsi_14": rsi(close),
        "macd": line,
        "macd_signal": signal,
        "macd_histogram": histogram,
        "atr_14": atr(high, low, close),
        "bollinger_upper": upper,
        "bollinger_middle": middle,
        "bollinger_lower": lower,
    }


def assert_series(name: str, got: np.ndarray, expected: Series) -> None:
    assert len(got) == len(expected), name
    for i, (value, want) in enumerate(zip(got.tolist(), expected, strict=True)):
        if want is None:
            assert math.isnan(value), (name, i, value)
        else:
            assert value == pytest.approx(want, rel=1e-9, abs=1e-9), (name, i)


def candles_of(close: list[float], high: list[float], low: list[float]) -> Candles:
    size = len(close)
    return Candles(
        times=np.arange(size, dtype=np.int64) * MINUTE_NS,
        open=np.array(close),
        high=np.array(high),
        low=np.array(low),
        close=np.array(close),
        volume=np.ones(size),
    )


def test_indicators_of_a_straight_line_have_the_values_worked_out_by_hand():
    # Closes 1, 2, ..., 60, each bar 2 wide (high = close + 1, low = close - 1).
    close = [float(i) for i in range(1, 61)]
    got = indicators(candles_of(close, [c + 1 for c in close], [c - 1 for c in close]))
    warm_up = {
        "sma_20": 19,
        "sma_50": 49,
        "ema_20": 19,
        "rsi_14": 14,
        "macd": 33,
        "macd_signal": 33,
        "macd_histogram": 33,
        "atr_14": 14,
        "bollinger_upper": 19,
        "bollinger_middle": 19,
        "bollinger_lower": 19,
    }
    for name, first in warm_up.items():
        assert np.isnan(got[name][:first]).all(), name
        assert not np.isnan(got[name][first:]).any(), name
    at = np.arange(60, dtype=np.float64) + 1  # the close at each index
    # An average of the last n closes of a line lags the close by (n - 1) / 2.
    np.testing.assert_allclose(got["sma_20"][19:], at[19:] - 9.5, rtol=1e-12)
    np.testing.assert_allclose(got["sma_50"][49:], at[49:] - 24.5, rtol=1e-12)
    assert got["sma_20"][19] == 10.5
    # The EMA starts at that average, and the line's step keeps it there:
    # 10.5 + (21 - 10.5) * 2 / 21 = 11.5 = 21 - 9.5.
    np.testing.assert_allclose(got["ema_20"][19:], at[19:] - 9.5, rtol=1e-12)
    # Only gains: RSI 100. Every true range is 2, so is their average.
    np.testing.assert_allclose(got["rsi_14"][14:], 100.0, rtol=1e-12)
    np.testing.assert_allclose(got["atr_14"][14:], 2.0, rtol=1e-12)
    # MACD: EMA 12 lags 5.5, EMA 26 lags 12.5; the line is 7 throughout, so is its signal.
    np.testing.assert_allclose(got["macd"][33:], 7.0, rtol=1e-12)
    np.testing.assert_allclose(got["macd_signal"][33:], 7.0, rtol=1e-12)
    np.testing.assert_allclose(got["macd_histogram"][33:], 0.0, atol=1e-12)
    # Twenty consecutive integers: population variance (20^2 - 1) / 12 = 33.25.
    band = 2 * math.sqrt(33.25)
    np.testing.assert_allclose(got["bollinger_middle"][19:], at[19:] - 9.5, rtol=1e-12)
    np.testing.assert_allclose(got["bollinger_upper"][19:], at[19:] - 9.5 + band, rtol=1e-12)
    np.testing.assert_allclose(got["bollinger_lower"][19:], at[19:] - 9.5 - band, rtol=1e-12)


# Sixty closes that rise, fall and chop (gains and losses, true ranges from the previous close).
ZIGZAG = [
    100.0, 101.5, 103.0, 102.2, 104.8, 106.1, 105.0, 103.4, 101.9, 102.7,
    100.3, 98.8, 99.6, 97.2, 96.5, 98.9, 101.2, 100.4, 102.6, 105.3,
    104.1, 106.7, 108.2, 107.5, 109.9, 108.3, 106.0, 104.4, 105.8, 103.1,
    101.7, 102.9, 100.2, 99.4, 101.8, 103.6, 102.5, 104.9, 107.2, 106.4,
    108.8, 110.1, 109.3, 111.7, 110.2, 108.6, 107.9, 109.4, 106.8, 105.5,
    107.3, 104.9, 103.8, 105.6, 107.7, 106.2, 108.5, 110.9, 109.7, 112.0,
]  # fmt: skip


def test_indicators_follow_their_definitions_on_a_choppy_series():
    high = [c + 0.6 + (i % 3) * 0.9 for i, c in enumerate(ZIGZAG)]
    low = [c - 0.4 - (i % 4) * 0.7 for i, c in enumerate(ZIGZAG)]
    got = indicators(candles_of(ZIGZAG, high, low))
    expected = reference_indicators(high, low, ZIGZAG)
    assert set(got) == set(expected)
    for name, values in expected.items():
        assert_series(name, got[name], values)


async def test_candles_are_the_ticks_aggregated_with_their_indicators(finished):
    _, directory, raw = finished
    candles = table(directory, "candles.parquet")
    ticks = pd.read_parquet(raw)
    ticks["minute"] = ticks["ts"].dt.floor("1min")
    expected = ticks.groupby("minute").agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
    )
    assert list(candles["time"]) == [t.value for t in expected.index]
    for column in ("open", "high", "low", "close"):
        np.testing.assert_allclose(candles[column], expected[column], rtol=0, atol=1e-9)
    np.testing.assert_allclose(candles["volume"], expected["volume"], rtol=1e-9)

    reference = reference_indicators(
        candles["high"].tolist(), candles["low"].tolist(), candles["close"].tolist()
    )
    for name, values in reference.items():
        assert_series(name, candles[name].to_numpy(), values)


async def test_stats_of_a_run_of_hours_say_n_a_for_daily_figures(finished):
    run, directory, _ = finished
    # A few hours of trades: one daily return, too few to annualise (never per-bar figures).
    assert run.stats.daily_return_count == 1
    assert not run.stats.daily_figures_available
    for name in ("sharpe_ratio", "sortino_ratio", "cagr", "annual_volatility", "calmar_ratio"):
        assert math.isnan(getattr(run.stats, name)), name
    equity = table(directory, "equity.parquet")
    values = equity["equity"].to_numpy()
    drawdown = np.max(1 - values / np.maximum.accumulate(values))
    assert run.stats.max_drawdown == pytest.approx(drawdown, rel=1e-12)
    positions = table(directory, "positions.parquet")
    closed = positions[positions["closed"] > 0]
    assert run.stats.trade_count == len(closed)
    pnls = closed["realized_pnl"].astype(float)
    assert run.stats.win_rate == pytest.approx((pnls > 0).mean())
    assert 0 < run.stats.exposure <= 1


def test_drawdown_its_duration_and_exposure():
    equity = np.array([100.0, 120.0, 90.0, 130.0, 117.0])
    assert stats.max_drawdown(equity) == pytest.approx(0.25)
    times = np.array([0, 10, 20, 30, 40], dtype=np.int64)
    assert stats.max_drawdown_duration(times, equity) == 20  # peak at 10, regained at 30
    assert stats.max_drawdown_duration(times[:3], equity[:3]) == 10  # not regained: until the end
    fill_times = np.array([10, 40, 60], dtype=np.int64)
    positions = np.array([1.0, 0.0, -2.0])
    assert stats.exposure(fill_times, positions, start_ns=0, end_ns=100) == pytest.approx(0.7)


async def test_streaming_large_datasets_from_the_catalog_gives_the_same_results(
    tmp_path: Path, finished
):
    run, directory, _ = finished
    # Same data, a service that treats every dataset as too large to keep in memory.
    data_dir = tmp_path / "streaming"
    data_dir.mkdir()
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 's.db'}", data_dir, run_in_memory_rows=100
    ) as service:
        dataset = await service.import_trades()
        request = spec(dataset, balances=(("USDT", "100000"),))
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
        streamed = await service.wait(created.backtest.name)
    assert streamed.state == pb.BACKTEST_STATE_SUCCEEDED, streamed.error_message
    assert streamed.spec_hash == run.spec_hash
    for field in ("pnl", "fees", "ending_equity", "fill_count", "trade_count", "max_drawdown"):
        assert getattr(streamed.stats, field) == getattr(run.stats, field), field
    other = data_dir / "runs" / streamed.name.split("/")[1]
    for name in ("fills.parquet", "equity.parquet", "candles.parquet", "portfolio.parquet"):
        pd.testing.assert_frame_equal(
            table(other, name), table(directory, name), check_exact=True, obj=name
        )


async def test_margin_perpetual_with_long_short_flips_keeps_the_books(tmp_path: Path, data_dir):
    async with running_service(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", data_dir) as service:
        dataset = await service.import_trades("perp.parquet", instrument=PERPETUAL)
        request = spec(
            dataset,
            balances=(("USDT", "50000"),),
            account_type=pb.ACCOUNT_TYPE_MARGIN,
            parameters={
                "fast_period": pb.ParameterValue(int_value=4),
                "slow_period": pb.ParameterValue(int_value=12),
                "trade_size": pb.ParameterValue(double_value=0.5),
                "allow_short": pb.ParameterValue(bool_value=True),
            },
        )
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
        run = await service.wait(created.backtest.name)
    assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
    directory = data_dir / "runs" / run.name.split("/")[1]
    portfolio = table(directory, "portfolio.parquet")
    account = table(directory, "account.parquet")
    positions = table(directory, "positions.parquet")
    # Both directions were traded: short positions opened after longs closed (flips).
    assert set(positions["entry"]) == {"BUY", "SELL"}
    assert (portfolio["position"] < 0).any()
    assert (portfolio["position"] > 0).any()
    last = portfolio.iloc[-1]
    books = account.groupby("currency").last()
    assert Decimal(last["cash_dec"]) == Decimal(books.loc["USDT", "total"])
    assert Decimal(last["position_dec"]) == 0
    starting, ending = Decimal(run.stats.starting_equity), Decimal(run.stats.ending_equity)
    realized, fees = Decimal(last["realized_pnl_dec"]), Decimal(last["fees_dec"])
    assert ending == starting + realized - fees == starting + Decimal(run.stats.pnl)
    # NautilusTrader's per-position realized PnL (net of commissions) adds up to ours.
    engine_realized = sum(Decimal(p) for p in positions["realized_pnl"])
    assert engine_realized == realized - fees
