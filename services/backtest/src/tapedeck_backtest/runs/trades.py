"""A run's trades: every round trip (a position from open to flat) with its excursions.

Built in the worker from NautilusTrader's positions. With a NETTING OMS a position that closes and
reopens keeps its id; the engine keeps each earlier round trip only as a snapshot, so a trade's
id is the position id and the round trip's ordinal, `P-1#2`. MAE and MFE are the largest adverse
and favourable moves of the prices the run saw from the average entry price while the trade was
open, times its peak quantity, in the quote currency (both >= 0): trade prices or quote mids from
the entry to the exit, or on bars the entry bar's close and the highs and lows of every bar that
closed after the entry, up to the exit's (a bar's time is its close; what the entry bar did
before its close is not the trade's).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from nautilus_trader.model.enums import OrderSide

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Trade:
    """One round trip; money as exact decimals in the quote currency."""

    trade_id: str
    position_id: str
    side: str  # LONG or SHORT
    quantity: Decimal  # peak quantity
    entry_time: int
    exit_time: int
    average_entry_price: Decimal
    average_exit_price: Decimal
    realized_pnl: Decimal  # net of fees
    fees: Decimal
    mae: float
    mfe: float

    @property
    def holding_ns(self) -> int:
        """Return how long the trade was open."""
        return self.exit_time - self.entry_time


@dataclass(frozen=True)
class RoundTrip:
    """A closed position state of the engine and the trade id it gets."""

    trade_id: str
    position_id: str
    position: Any  # NautilusTrader's Position, closed


def round_trips(cache: Any) -> list[RoundTrip]:
    """Return every closed round trip of the engine's cache, by exit time."""
    trips: list[RoundTrip] = []
    for position in cache.positions():
        history = [p for p in cache.position_snapshots(position.id) if p.is_closed]
        if position.is_closed:
            history.append(position)
        history.sort(key=lambda p: p.ts_opened)
        base = position.id.value
        trips += [RoundTrip(f"{base}#{n}", base, p) for n, p in enumerate(history, 1)]
    trips.sort(key=lambda t: (t.position.ts_closed, t.trade_id))
    return trips


def build(
    trips: list[RoundTrip],
    *,
    price_times: IntArray,
    prices: FloatArray,
    highs: FloatArray,
    lows: FloatArray,
) -> list[Trade]:
    """Return the round trips as trades, with excursions over the prices the run saw.

    `highs` and `lows` are each price's range up to its time (a bar's; a tick's is its price).
    """
    trades = []
    for trip in trips:
        position = trip.position
        long = position.entry == OrderSide.BUY
        quantity = Decimal(str(position.peak_qty))
        entry = Decimal(str(position.avg_px_open))
        lo = int(np.searchsorted(price_times, position.ts_opened, "left"))
        end = int(np.searchsorted(price_times, position.ts_closed, "right"))
        # A price at the entry instant counts alone: its range (a bar's) came before the entry.
        at_entry = lo < end and price_times[lo] == position.ts_opened
        first = lo + 1 if at_entry else lo
        top = highs[first:end].max(initial=-np.inf)
        bottom = lows[first:end].min(initial=np.inf)
        if at_entry:
            top, bottom = max(top, prices[lo]), min(bottom, prices[lo])
        mae, mfe = _excursions(float(top), float(bottom), float(entry), float(quantity), long=long)
        trades.append(
            Trade(
                trade_id=trip.trade_id,
                position_id=trip.position_id,
                side="LONG" if long else "SHORT",
                quantity=quantity,
                entry_time=int(position.ts_opened),
                exit_time=int(position.ts_closed),
                average_entry_price=entry,
                average_exit_price=Decimal(str(position.avg_px_close)),
                realized_pnl=position.realized_pnl.as_decimal(),
                fees=sum((c.as_decimal() for c in position.commissions()), Decimal(0)),
                mae=mae,
                mfe=mfe,
            )
        )
    return trades


def _excursions(
    top: float, bottom: float, entry: float, quantity: float, *, long: bool
) -> tuple[float, float]:
    if top < bottom:  # no price while the trade was open
        return 0.0, 0.0
    up = max(top - entry, 0.0) * quantity
    down = max(entry - bottom, 0.0) * quantity
    return (down, up) if long else (up, down)


def table(trades: list[Trade]) -> pa.Table:
    """Return trades.parquet: decimals as exact strings, times as int64 nanoseconds."""

    def strings(name: str) -> pa.Array:
        return pa.array([str(getattr(t, name)) for t in trades], pa.string())

    return pa.table(
        {
            "trade_id": strings("trade_id"),
            "position_id": strings("position_id"),
            "side": strings("side"),
            "quantity": strings("quantity"),
            "entry_time": pa.array([t.entry_time for t in trades], pa.int64()),
            "exit_time": pa.array([t.exit_time for t in trades], pa.int64()),
            "average_entry_price": strings("average_entry_price"),
            "average_exit_price": strings("average_exit_price"),
            "realized_pnl": strings("realized_pnl"),
            "fees": strings("fees"),
            "mae": pa.array([t.mae for t in trades], pa.float64()),
            "mfe": pa.array([t.mfe for t in trades], pa.float64()),
        }
    )


def from_rows(rows: list[dict[str, Any]]) -> list[Trade]:
    """Parse rows of trades.parquet back into trades."""
    return [
        Trade(
            trade_id=r["trade_id"],
            position_id=r["position_id"],
            side=r["side"],
            quantity=Decimal(r["quantity"]),
            entry_time=r["entry_time"],
            exit_time=r["exit_time"],
            average_entry_price=Decimal(r["average_entry_price"]),
            average_exit_price=Decimal(r["average_exit_price"]),
            realized_pnl=Decimal(r["realized_pnl"]),
            fees=Decimal(r["fees"]),
            mae=r["mae"],
            mfe=r["mfe"],
        )
        for r in rows
    ]
