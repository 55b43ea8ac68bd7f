"""A finished run's result files agree with its stats, with NautilusTrader's books and with TA-Lib."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import talib

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest import stats
from tapedeck_backtest.results import ResultFiles
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

    files = ResultFiles(directory)
    manifest = files.manifest()
    assert manifest == json.loads((directory / "manifest.json").read_text())
    assert manifest["rows"]["fills.parquet"] == len(fills)
    assert manifest["account_type"] == "CASH"
    assert files.table("equity.parquet", columns=["time"]).num_rows == len(equity)


async def test_candles_are_the_ticks_aggregated_and_indicators_match_talib(finished):
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

    close = candles["close"].to_numpy()
    high, low = candles["high"].to_numpy(), candles["low"].to_numpy()
    macd, signal, histogram = talib.MACD(close, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0)
    reference = {
        "sma_20": talib.SMA(close, 20),
        "sma_50": talib.SMA(close, 50),
        "ema_20": talib.EMA(close, 20),
        "rsi_14": talib.RSI(close, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_histogram": histogram,
        "atr_14": talib.ATR(high, low, close, 14),
        "bollinger_upper": upper,
        "bollinger_middle": middle,
        "bollinger_lower": lower,
    }
    for name, values in reference.items():
        np.testing.assert_allclose(candles[name], values, rtol=1e-9, equal_nan=True, err_msg=name)
    # An independent check of the definitions TA-Lib is trusted for: the plain rolling mean.
    rolling = pd.Series(close).rolling(20).mean().to_numpy()
    np.testing.assert_allclose(candles["sma_20"], rolling, rtol=1e-9, equal_nan=True)
    rsi = candles["rsi_14"].dropna()
    assert ((rsi >= 0) & (rsi <= 100)).all()


async def test_stats_are_recomputable_from_the_equity_curve(finished):
    run, directory, _ = finished
    equity = table(directory, "equity.parquet")
    bars = equity[equity["kind"] == 0]["equity"].to_numpy()
    returns = np.diff(bars) / bars[:-1]
    per_year = 365 * 24 * 60
    expected_sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(per_year)
    assert run.stats.sharpe_ratio == pytest.approx(expected_sharpe, rel=1e-9)
    values = equity["equity"].to_numpy()
    drawdown = np.max(1 - values / np.maximum.accumulate(values))
    assert run.stats.max_drawdown == pytest.approx(drawdown, rel=1e-12)
    positions = table(directory, "positions.parquet")
    closed = positions[positions["closed"] > 0]
    assert run.stats.trade_count == len(closed)
    pnls = closed["realized_pnl"].astype(float)
    assert run.stats.win_rate == pytest.approx((pnls > 0).mean())
    assert 0 < run.stats.exposure <= 1


def test_sharpe_and_sortino_annualise_by_bar_width():
    rng = np.random.default_rng(3)
    equity = 100 * np.cumprod(1 + rng.normal(0.0001, 0.001, 1000))
    returns = np.diff(equity) / equity[:-1]
    minute = stats.sharpe_ratio(equity, bar_interval_ns=MINUTE_NS)
    hour = stats.sharpe_ratio(equity, bar_interval_ns=60 * MINUTE_NS)
    assert minute == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(525_600))
    assert minute / hour == pytest.approx(math.sqrt(60))
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    assert stats.sortino_ratio(equity, bar_interval_ns=MINUTE_NS) == pytest.approx(
        returns.mean() / downside * math.sqrt(525_600)
    )
    assert math.isnan(stats.sharpe_ratio(np.array([1.0]), bar_interval_ns=MINUTE_NS))
    assert stats.sharpe_ratio(np.full(10, 5.0), bar_interval_ns=MINUTE_NS) == 0.0


def test_drawdown_win_rate_profit_factor_and_exposure():
    assert stats.max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 117.0])) == pytest.approx(0.25)
    pnls = np.array([10.0, -5.0, 20.0, -5.0])
    assert stats.win_rate(pnls) == 0.5
    assert stats.profit_factor(pnls) == 3.0
    assert math.isnan(stats.profit_factor(np.array([1.0])))
    times = np.array([10, 40, 60], dtype=np.int64)
    positions = np.array([1.0, 0.0, -2.0])
    assert stats.exposure(times, positions, start_ns=0, end_ns=100) == pytest.approx(0.7)


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
    for field in ("pnl", "fees", "ending_equity", "fill_count", "trade_count", "sharpe_ratio"):
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
