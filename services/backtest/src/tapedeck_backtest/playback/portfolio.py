"""A run's portfolio at any instant: binary search over the cumulative arrays, exact decimals.

The runs writer stores the portfolio after every fill (position, average price, realized PnL
gross of fees, fees, cash and base balance, as exact decimal strings). The state at t is the row
of the last fill at or before t, marked at the last price the results record at or before t (a
bar close at its close time, or the market price at a fill). Two binary searches and a handful
of decimal operations: the cost does not depend on the number of fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from tapedeck_backtest.playback.files import RunFiles

_ZERO = Decimal(0)


@dataclass(frozen=True)
class PositionAt:
    """An open position at an instant."""

    instrument_id: str
    quantity: Decimal
    average_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True)
class PortfolioAt:
    """A run's portfolio at an instant; money in the quote currency."""

    time_ns: int
    cash: list[tuple[str, Decimal]]
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    fill_count: int
    positions: list[PositionAt]


def mark_at(files: RunFiles, time_ns: int) -> Decimal:
    """Return the last recorded price at or before `time_ns` (the first one before any)."""
    marks = files.equity_marks
    if marks.size == 0:
        return _ZERO
    index = int(np.searchsorted(files.equity_times, time_ns, "right")) - 1
    # Before the first bar closes the run's first recorded price is the best mark there is.
    return Decimal(repr(float(marks[max(index, 0)])))


def portfolio_at(files: RunFiles, time_ns: int) -> PortfolioAt:
    """Return the portfolio after every fill at or before `time_ns`, marked at that instant."""
    manifest = files.manifest
    fill_count = int(np.searchsorted(files.portfolio_times, time_ns, "right"))
    if fill_count == 0:
        balances = dict(manifest.starting_balances)
        position = average = realized = fees = _ZERO
        cash = balances.get(manifest.quote_currency, _ZERO)
        base = (
            _ZERO if manifest.base_currency is None else balances.get(manifest.base_currency, _ZERO)
        )
    else:
        row = fill_count - 1
        table = files.portfolio

        def value(column: str) -> Decimal:
            return Decimal(table.column(column)[row].as_py())

        position = value("position_dec")
        average = value("average_price_dec")
        realized = value("realized_pnl_dec")
        fees = value("fees_dec")
        cash = value("cash_dec")
        base = value("base_balance_dec")
    mark = mark_at(files, time_ns)
    unrealized = position * (mark - average) if position != 0 else _ZERO
    equity = cash + base * mark
    if manifest.account_type == "MARGIN":
        equity += unrealized
    balances_out = [(manifest.quote_currency, cash)]
    if manifest.base_currency is not None and (manifest.account_type == "CASH" or base != 0):
        balances_out.append((manifest.base_currency, base))
    positions = []
    if position != 0:
        positions.append(
            PositionAt(
                instrument_id=manifest.instrument_id,
                quantity=position,
                average_price=average,
                mark_price=mark,
                unrealized_pnl=unrealized,
                realized_pnl=realized,
            )
        )
    return PortfolioAt(
        time_ns=time_ns,
        cash=balances_out,
        equity=equity,
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        fees=fees,
        fill_count=fill_count,
        positions=positions,
    )


def decimal_text(value: Decimal) -> str:
    """Return a decimal as plain notation (never an exponent), exact."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text
