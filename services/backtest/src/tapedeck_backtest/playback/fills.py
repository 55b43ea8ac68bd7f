"""Pages of a run's fills in a time range, read from the memory-mapped fills table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tapedeck_backtest.playback.files import RunFiles


@dataclass(frozen=True)
class FillWindow:
    """The fills at times in [start, end), as row positions."""

    lo: int
    hi: int


def window(files: RunFiles, *, start_ns: int | None, end_ns: int | None) -> FillWindow:
    """Locate the fills at times in [start, end)."""
    times = files.fill_times
    lo = 0 if start_ns is None else int(np.searchsorted(times, start_ns, "left"))
    hi = times.size if end_ns is None else int(np.searchsorted(times, end_ns, "left"))
    return FillWindow(lo, max(lo, hi))


def page(files: RunFiles, fills: FillWindow, *, offset: int, size: int) -> list[dict[str, Any]]:
    """Return the window's fills [offset, offset + size) as rows with their times."""
    a = fills.lo + offset
    b = min(a + size, fills.hi)
    if a >= b:
        return []
    rows: list[dict[str, Any]] = files.fills.slice(a, b - a).to_pylist()
    for row, time_ns in zip(rows, files.fill_times[a:b].tolist(), strict=True):
        row["time"] = time_ns
    return rows
