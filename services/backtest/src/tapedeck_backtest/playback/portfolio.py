"""A run's portfolio at any instant: binary search over the cumulative arrays, exact decimals.

The runs writer stores the portfolio after every fill (position, average price, realized PnL
gross of fees, fees, cash and base balance, as exact decimal strings). The state at t is the row
of the last fill at or before t, marked at the last price the results record at or before t (a
bar close at its close time, or the market price at a fill). Two binary searches and a handful
of decimal operations: the cost does not depend on the number of fills.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from tapedeck_backtest.playback.domain import PortfolioAt, value_portfolio
from tapedeck_backtest.playback.files import RunFiles
from tapedeck_backtest.runs.domain import Holdings


def mark_at(files: RunFiles, time_ns: int) -> Decimal:
    """Return the last recorded price at or before `time_ns` (the first one before any)."""
    marks = files.equity_marks
    if marks.size == 0:
        return Decimal(0)
    index = int(np.searchsorted(files.equity_times, time_ns, "right")) - 1
    # Before the first bar closes the run's first recorded price is the best mark there is.
    return Decimal(repr(float(marks[max(index, 0)])))


def holdings_after(files: RunFiles, fill_count: int) -> Holdings:
    """Return the portfolio after the first `fill_count` fills, exact, from the stored row."""
    if fill_count == 0:
        return files.manifest.starting_holdings()
    table, row = files.portfolio, fill_count - 1

    def value(column: str) -> Decimal:
        return Decimal(table.column(f"{column}_dec")[row].as_py())

    return Holdings(
        cash=value("cash"),
        base_balance=value("base_balance"),
        position=value("position"),
        average_price=value("average_price"),
        realized_pnl=value("realized_pnl"),
        fees=value("fees"),
    )


def portfolio_at(files: RunFiles, time_ns: int) -> PortfolioAt:
    """Return the portfolio after every fill at or before `time_ns`, marked at that instant."""
    fill_count = int(np.searchsorted(files.portfolio_times, time_ns, "right"))
    return value_portfolio(
        files.manifest,
        holdings_after(files, fill_count),
        time_ns=time_ns,
        fill_count=fill_count,
        mark=mark_at(files, time_ns),
    )
