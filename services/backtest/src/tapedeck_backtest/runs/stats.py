"""Summary statistics of a run: return and risk figures from the equity curve's daily returns
through empyrical-reloaded, trade figures from NautilusTrader's PortfolioAnalyzer.

Return and risk figures follow the field's convention: the equity curve is resampled to UTC days
(the last value of each day that has data, the starting equity before the first), and its daily
simple returns are annualised with 252 periods a year for instruments that trade on weekdays (FX)
or 365 for those that trade every day (crypto). A run with fewer than `MIN_DAILY_RETURNS` daily
returns has no daily figures (NaN, reported as "n/a"): annualising per-bar returns instead gives
numbers no quant recognises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tapedeck_backtest.datasets.instruments import InstrumentKind
from tapedeck_backtest.runs.trades import Trade

MIN_DAILY_RETURNS = 5
TRADING_DAYS_PER_YEAR = 252
CALENDAR_DAYS_PER_YEAR = 365

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DailyFigures:
    """Return and risk figures from daily returns; NaN when the run is too short for them."""

    periods_per_year: int
    daily_returns: int
    sharpe_ratio: float
    sortino_ratio: float
    cagr: float
    annual_volatility: float
    calmar_ratio: float
    best_day: float
    worst_day: float


@dataclass(frozen=True)
class TradeFigures:
    """Figures over closed positions (round trips), from NautilusTrader's PortfolioAnalyzer.

    Win rate, expectancy and average win and loss are over realized PnL in the quote currency;
    profit factor, as NautilusTrader defines it, is over the positions' realized returns.
    """

    trade_count: int
    win_rate: float
    profit_factor: float
    expectancy: float
    average_win: float
    average_loss: float
    average_holding_seconds: float


def periods_per_year(kind: InstrumentKind) -> int:
    """Return the annualisation of daily figures: FX trades on weekdays, crypto every day."""
    return TRADING_DAYS_PER_YEAR if kind is InstrumentKind.FX else CALENDAR_DAYS_PER_YEAR


def daily_returns(times: IntArray, equity: FloatArray, *, starting_equity: float) -> pd.Series:
    """Return the daily simple returns of an equity curve: last value per UTC day with data."""
    if times.size == 0:
        return pd.Series(dtype=np.float64)
    curve = pd.Series(equity, index=pd.to_datetime(times, unit="ns", utc=True))
    closes = curve.resample("1D").last().dropna()
    before = pd.Series([starting_equity], index=[closes.index[0] - pd.Timedelta(days=1)])
    returns: pd.Series = pd.concat((before, closes)).pct_change().iloc[1:]
    return returns


def daily_figures(returns: pd.Series, *, periods_per_year: int) -> DailyFigures:
    """Compute Sharpe, Sortino, CAGR, volatility, Calmar, best and worst day with empyrical."""
    if returns.size < MIN_DAILY_RETURNS:
        nan = math.nan
        return DailyFigures(periods_per_year, int(returns.size), nan, nan, nan, nan, nan, nan, nan)
    # Imported here: empyrical brings SciPy (~60 MB), which only the run workers need.
    import empyrical  # noqa: PLC0415

    year = {"annualization": periods_per_year}
    return DailyFigures(
        periods_per_year=periods_per_year,
        daily_returns=int(returns.size),
        sharpe_ratio=float(empyrical.sharpe_ratio(returns, **year)),
        sortino_ratio=float(empyrical.sortino_ratio(returns, **year)),
        cagr=float(empyrical.cagr(returns, **year)),
        annual_volatility=float(empyrical.annual_volatility(returns, **year)),
        calmar_ratio=float(empyrical.calmar_ratio(returns, **year)),
        best_day=float(returns.max()),
        worst_day=float(returns.min()),
    )


def trade_figures(analyzer: Any, trades: list[Trade], currency: Any) -> TradeFigures:
    """Read the trade figures from NautilusTrader's PortfolioAnalyzer; holding time from trades.

    `analyzer` must already have `calculate_statistics(account, closed positions)` applied.
    """
    pnls = analyzer.get_performance_stats_pnls(currency)
    returns = analyzer.get_performance_stats_returns()
    held = [trade.holding_ns / 1e9 for trade in trades]
    return TradeFigures(
        trade_count=len(trades),
        win_rate=_figure(pnls.get("Win Rate")) if trades else math.nan,
        profit_factor=_figure(returns.get("Profit Factor")),
        expectancy=_figure(pnls.get("Expectancy")) if trades else math.nan,
        average_win=_figure(pnls.get("Avg Winner")),
        average_loss=_figure(pnls.get("Avg Loser")),
        average_holding_seconds=float(np.mean(held)) if held else math.nan,
    )


def _figure(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def max_drawdown(equity: FloatArray) -> float:
    """Largest peak-to-trough fall as a positive fraction of the peak."""
    if equity.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks))


def max_drawdown_duration(times: IntArray, equity: FloatArray) -> int:
    """Nanoseconds from the peak before the largest drawdown until equity regains it (or the end)."""
    if equity.size == 0:
        return 0
    peaks = np.maximum.accumulate(equity)
    trough = int(np.argmax(1.0 - equity / peaks))
    peak = int(np.flatnonzero(equity[: trough + 1] == peaks[trough])[0])
    recovered = np.flatnonzero(equity[trough:] >= peaks[trough])
    end = trough + int(recovered[0]) if recovered.size else equity.size - 1
    return int(times[end] - times[peak])


def exposure(
    fill_times: IntArray, positions_after: FloatArray, *, start_ns: int, end_ns: int
) -> float:
    """Fraction of the window during which a position was open."""
    if end_ns <= start_ns or fill_times.size == 0:
        return 0.0
    bounds = np.append(np.clip(fill_times, start_ns, end_ns), end_ns)
    held = np.diff(bounds)[positions_after != 0.0]
    return float(np.sum(held) / (end_ns - start_ns))
