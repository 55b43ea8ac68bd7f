"""Pages of a run's fills in a time range, read from the memory-mapped fills table."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tapedeck_backtest.playback.files import RunFiles, time_span
from tapedeck_backtest.runs.domain import Fill


@dataclass(frozen=True)
class FillWindow:
    """The fills at times in [start, end), as row positions."""

    lo: int
    hi: int

    def __len__(self) -> int:
        return self.hi - self.lo


def window(files: RunFiles, *, start_ns: int | None, end_ns: int | None) -> FillWindow:
    """Locate the fills at times in [start, end)."""
    return FillWindow(*time_span(files.fill_times, start_ns=start_ns, end_ns=end_ns))


def page(files: RunFiles, fills: FillWindow, *, offset: int, size: int) -> list[Fill]:
    """Return the window's fills [offset, offset + size), exact."""
    a = fills.lo + offset
    b = min(a + size, fills.hi)
    if a >= b:
        return []
    rows = files.fills.slice(a, b - a).to_pylist()
    return [
        Fill(
            time=time_ns,
            fill_id=row["fill_id"],
            order_id=row["order_id"],
            position_id=row["position_id"],
            instrument_id=row["instrument_id"],
            side=row["side"],
            quantity=Decimal(row["quantity"]),
            price=Decimal(row["price"]),
            commission=Decimal(row["commission"]),
            commission_currency=row["commission_currency"],
        )
        for row, time_ns in zip(rows, files.fill_times[a:b].tolist(), strict=True)
    ]
