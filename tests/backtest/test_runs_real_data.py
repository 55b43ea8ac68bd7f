"""A backtest on the real BTC perpetual one-minute bars, imported from ../shared, through the service."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tests.backtest.reference import BTC_PERP_BARS, BTCUSDT_PERP, REAL
from tests.backtest.runs_support import running_service, spec
from tests.support import missing_dependency

BARS = BTC_PERP_BARS
FIVE_MINUTES_NS = 300_000_000_000


async def test_ema_cross_on_the_real_btc_perpetual_bars_with_five_minute_candles(
    tmp_path: Path, data_dir: Path
):
    if not (REAL / BARS).exists():
        missing_dependency(f"the shared real data at {REAL}")
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 'real.db'}", data_dir, data_root=REAL
    ) as service:
        imported = await service.import_file(
            BARS,
            kind=pb.DATA_KIND_BARS,
            instrument=BTCUSDT_PERP,
            bar_convention=pb.BAR_CONVENTION_BAR_CLOSE,
        )
        request = spec(
            imported.dataset.name,
            balances=(("USDT", "100000"),),
            account_type=pb.ACCOUNT_TYPE_MARGIN,
            bar_seconds=300,
            parameters={
                "fast_period": pb.ParameterValue(int_value=10),
                "slow_period": pb.ParameterValue(int_value=30),
                "trade_size": pb.ParameterValue(double_value=0.5),
                "allow_short": pb.ParameterValue(bool_value=True),
            },
        )
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
        run = await service.wait(created.backtest.name, seconds=240)
    assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
    assert run.stats.fill_count > 10
    assert run.progress.events_processed == imported.dataset.row_count
    directory = data_dir / "runs" / run.name.split("/")[1]

    # The 5-minute candles are the real 1-minute bars aggregated (bar time = its close).
    raw = pd.read_csv(REAL / BARS)
    close_ns = pd.to_datetime(raw["timestamp"], utc=True).astype("int64").to_numpy()
    raw["bucket"] = ((close_ns - 60_000_000_000) // FIVE_MINUTES_NS) * FIVE_MINUTES_NS
    expected = raw.groupby("bucket").agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    candles = pq.read_table(directory / "candles.parquet").to_pandas()
    assert list(candles["time"]) == list(expected.index)
    for column in ("open", "high", "low", "close"):
        np.testing.assert_allclose(candles[column], expected[column], rtol=0, atol=1e-9)
    np.testing.assert_allclose(candles["volume"], expected["volume"], rtol=1e-9)

    portfolio = pq.read_table(directory / "portfolio.parquet").to_pandas()
    account = pq.read_table(directory / "account.parquet").to_pandas()
    last = portfolio.iloc[-1]
    assert Decimal(last["cash_dec"]) == Decimal(
        account.groupby("currency").last().loc["USDT", "total"]
    )
    starting, ending = Decimal(run.stats.starting_equity), Decimal(run.stats.ending_equity)
    assert ending == starting + Decimal(last["realized_pnl_dec"]) - Decimal(last["fees_dec"])

    # Excursions on bars: the entry bar's close, then the highs and lows of every bar that
    # closed after the entry, up to the exit's; longs and shorts both.
    trades = pq.read_table(directory / "trades.parquet").to_pandas()
    assert set(trades["side"]) == {"LONG", "SHORT"}
    highs, lows = raw["high"].to_numpy(), raw["low"].to_numpy()
    closes = raw["close"].to_numpy()
    for trade in trades.itertuples():
        (at_entry,) = np.flatnonzero(close_ns == trade.entry_time)
        after = (close_ns > trade.entry_time) & (close_ns <= trade.exit_time)
        top = max(closes[at_entry], highs[after].max(initial=-np.inf))
        bottom = min(closes[at_entry], lows[after].min(initial=np.inf))
        entry, quantity = float(trade.average_entry_price), float(trade.quantity)
        up, down = max(top - entry, 0) * quantity, max(entry - bottom, 0) * quantity
        favourable, adverse = (up, down) if trade.side == "LONG" else (down, up)
        np.testing.assert_allclose([trade.mfe, trade.mae], [favourable, adverse], rtol=1e-9)
