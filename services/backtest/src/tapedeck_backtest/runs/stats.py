"""Summary statistics of a run from its equity curve and closed positions."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

NANOS_PER_YEAR = 365 * 86_400 * 1_000_000_000  # crypto trades every day; one year of bars

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def periods_per_year(bar_interval_ns: int) -> float:
    """Return how many bars of this width fit in a year, the annualisation factor's square."""
    return NANOS_PER_YEAR / bar_interval_ns


def sharpe_ratio(bar_equity: FloatArray, *, bar_interval_ns: int) -> float:
    """Annualised Sharpe ratio (risk-free 0) of per-bar simple returns; NaN below two returns."""
    returns = _returns(bar_equity)
    if returns.size < 2:
        return math.nan
    deviation = float(np.std(returns, ddof=1))
    if deviation == 0.0:
        return 0.0
    return float(np.mean(returns)) / deviation * math.sqrt(periods_per_year(bar_interval_ns))


def sortino_ratio(bar_equity: FloatArray, *, bar_interval_ns: int) -> float:
    """Annualised Sortino ratio: mean return over downside deviation (target 0); NaN if none."""
    returns = _returns(bar_equity)
    if returns.size < 2:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside == 0.0:
        return math.nan
    return float(np.mean(returns)) / downside * math.sqrt(periods_per_year(bar_interval_ns))


def max_drawdown(equity: FloatArray) -> float:
    """Largest peak-to-trough fall as a positive fraction of the peak."""
    if equity.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks))


def win_rate(closed_pnls: FloatArray) -> float:
    """Winning closed positions over closed positions; NaN with none."""
    if closed_pnls.size == 0:
        return math.nan
    return float(np.count_nonzero(closed_pnls > 0) / closed_pnls.size)


def profit_factor(closed_pnls: FloatArray) -> float:
    """Gross profit over gross loss of closed positions; NaN when there is no loss."""
    loss = -float(np.sum(closed_pnls[closed_pnls < 0]))
    if loss == 0.0:
        return math.nan
    return float(np.sum(closed_pnls[closed_pnls > 0])) / loss


def exposure(
    fill_times: IntArray, positions_after: FloatArray, *, start_ns: int, end_ns: int
) -> float:
    """Fraction of the window during which a position was open."""
    if end_ns <= start_ns or fill_times.size == 0:
        return 0.0
    bounds = np.append(np.clip(fill_times, start_ns, end_ns), end_ns)
    held = np.diff(bounds)[positions_after != 0.0]
    return float(np.sum(held) / (end_ns - start_ns))


def _returns(bar_equity: FloatArray) -> FloatArray:
    if bar_equity.size < 2:
        return np.empty(0)
    previous = bar_equity[:-1]
    return np.diff(bar_equity) / previous
