"""Equity curve windows: time range, every-Nth sampling, LTTB downsampling, pages and chunks.

The output of a request is a sequence of indices into the run's memory-mapped equity columns:
implicit (`lo, lo + N, lo + 2N, ...`) for plain and sampled reads, so memory does not grow with
the curve; an explicit index array of at most `max_points` entries after LTTB. Pages are ranges
of that sequence; chunks are slices of a page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from tsdownsample import LTTBDownsampler, MinMaxLTTBDownsampler

from tapedeck_backtest.playback.files import FloatArray, IntArray, RunFiles, time_span

# Above this many input points MinMaxLTTB's min-max preselection pays for itself (measured:
# plain LTTB is 4 ms at 1M points and 50 ms at 10M, MinMaxLTTB 30 ms and 43 ms with int64 times).
_MINMAX_FROM = 5_000_000
_MINMAX_RATIO = 4


@dataclass(frozen=True)
class EquitySelection:
    """The points a request selects, in order."""

    lo: int
    hi: int
    step: int
    picked: npt.NDArray[np.int64] | None

    @property
    def total_points(self) -> int:
        """Return the points in the window before sampling."""
        return self.hi - self.lo

    def __len__(self) -> int:
        if self.picked is not None:
            return int(self.picked.size)
        return (self.hi - self.lo + self.step - 1) // self.step


def select(
    files: RunFiles,
    *,
    start_ns: int | None,
    end_ns: int | None,
    sample_every: int,
    max_points: int,
) -> EquitySelection:
    """Select the points in [start, end), every `sample_every`th, then LTTB to `max_points`."""
    times = files.equity_times
    lo, hi = time_span(times, start_ns=start_ns, end_ns=end_ns)
    step = max(sample_every, 1)
    selection = EquitySelection(lo, hi, step, None)
    if max_points == 0 or len(selection) <= max_points:
        return selection
    x = np.ascontiguousarray(times[lo:hi:step])  # a view unless sampling strides it
    y = np.ascontiguousarray(files.equity_values[lo:hi:step])
    picked = lttb(x, y, max_points)
    picked = with_deepest_drawdown(picked, files.equity_drawdowns[lo:hi:step])
    return EquitySelection(lo, hi, step, lo + picked * step)


def with_deepest_drawdown(
    picked: npt.NDArray[np.int64], drawdowns: FloatArray
) -> npt.NDArray[np.int64]:
    """Return LTTB's indices with the deepest drawdown in place of its nearest inner neighbour.

    LTTB keeps what is visually significant, which need not be the trough itself: a drawdown
    drawn from its points would stop short of the run's max drawdown.
    """
    trough = int(np.argmax(drawdowns))
    at = int(np.searchsorted(picked, trough))
    if drawdowns[trough] <= 0 or (at < picked.size and picked[at] == trough):
        return picked
    # The first and last indices are always picked, so the trough lies strictly between two.
    inner = [i for i in (at - 1, at) if 0 < i < picked.size - 1]
    nearest = min(inner, key=lambda i: abs(int(picked[i]) - trough))
    kept = picked.copy()
    kept[nearest] = trough
    return kept


def lttb(x: IntArray, y: FloatArray, n_out: int) -> npt.NDArray[np.int64]:
    """Return the indices LTTB keeps (first and last always), via tsdownsample."""
    if x.size >= _MINMAX_FROM and n_out * _MINMAX_RATIO < x.size:
        downsampler = MinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]
        indices = downsampler.downsample(x, y, n_out=n_out, minmax_ratio=_MINMAX_RATIO)
    else:
        indices = LTTBDownsampler().downsample(x, y, n_out=n_out)  # type: ignore[no-untyped-call]
    return np.asarray(indices, dtype=np.int64)


def blocks(
    files: RunFiles, selection: EquitySelection, *, offset: int, count: int, chunk_size: int
) -> Iterator[tuple[IntArray, FloatArray, FloatArray]]:
    """Yield (times, equity, drawdown) of selected points [offset, offset + count) in chunks."""
    end = min(offset + count, len(selection))
    for a in range(offset, end, chunk_size):
        b = min(a + chunk_size, end)
        rows: npt.NDArray[np.int64] | slice
        if selection.picked is not None:
            rows = selection.picked[a:b]
        else:
            first = selection.lo + a * selection.step
            rows = slice(first, selection.lo + (b - 1) * selection.step + 1, selection.step)
        yield files.equity_times[rows], files.equity_values[rows], files.equity_drawdowns[rows]
