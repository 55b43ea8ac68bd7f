"""Windows of a run's precomputed candles, re-aggregated into coarser buckets when too many
(their indicators then computed on those buckets)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from tapedeck_backtest.playback.files import FloatArray, IntArray, RunFiles, time_span
from tapedeck_backtest.runs import results
from tapedeck_backtest.runs.results import Candles
from tapedeck_common.errors import FieldViolation, InvalidArgument

OHLCV = ("open", "high", "low", "close", "volume")
# Source candles aggregated per step: bounds the temporary arrays of one step.
SOURCE_BLOCK = 262_144
# Buckets before a re-aggregated window that its indicators start from: the longest window (50)
# exactly, and the recursive ones (EMA, RSI, ATR, MACD) to far below a double's precision (a
# bucket 2,000 back weighs at most (25/27)**2000 < 1e-66 in an EMA-26).
WARMUP_BUCKETS = 2_000
# Whole-week multiples tried before the buckets are aligned to the window's first candle.
_ALIGNMENT_TRIES = 32

_MINUTE = 60_000_000_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY
# The timeframes exchanges offer, smallest first; re-aggregation picks the smallest that fits.
STANDARD_TIMEFRAMES_NS = (
    *(m * _MINUTE for m in (1, 3, 5, 15, 30)),
    *(h * _HOUR for h in (1, 2, 4, 6, 12)),
    _DAY,
    _WEEK,
)
# Buckets are aligned to the Unix epoch, as exchanges align them; weeks open on Monday 00:00
# UTC (the epoch was a Thursday, so the first Monday is four days in).
WEEK_ORIGIN_NS = 4 * _DAY


def aligned_origin(width_ns: int) -> int:
    """Return where buckets of `width_ns` are aligned: Mondays for whole weeks, else the epoch."""
    return WEEK_ORIGIN_NS if width_ns % _WEEK == 0 else 0


def timeframe_label(width_ns: int) -> str:
    """Return a width as exchanges name timeframes: "1m", "15m", "4h", "1d", "1w" (or seconds)."""
    for unit, size in (("w", _WEEK), ("d", _DAY), ("h", _HOUR), ("m", _MINUTE)):
        if width_ns % size == 0:
            return f"{width_ns // size}{unit}"
    return f"{width_ns / 1e9:g}s"


@dataclass(frozen=True)
class CandleWindow:
    """Which source candles a request covers and how wide its output candles are."""

    lo: int
    hi: int
    bucket_ns: int
    aggregated: bool
    origin_ns: int = 0

    @property
    def source_count(self) -> int:
        """Return the candles in the window before aggregation."""
        return self.hi - self.lo


@dataclass(frozen=True)
class CandleBlock:
    """Consecutive output candles as columns; indicators in the order asked for."""

    times: IntArray
    columns: dict[str, FloatArray]
    indicators: list[FloatArray]

    def __len__(self) -> int:
        return int(self.times.size)


def window(
    files: RunFiles,
    *,
    start_ns: int | None,
    end_ns: int | None,
    max_candles: int,
    timeframe_ns: int | None = None,
) -> CandleWindow:
    """Locate the candles opening in [start, end) and pick their timeframe.

    An asked timeframe is used as it is (a whole multiple of the run's bar interval). Else the
    run's own candles when they fit `max_candles`, then the smallest standard timeframe that is
    a multiple of the bar interval and fits, then whole weeks; buckets on the exchanges' grid.
    """
    times = files.candle_times
    lo, hi = time_span(times, start_ns=start_ns, end_ns=end_ns)
    interval = files.manifest.bar_interval_ns
    if timeframe_ns is not None:
        if timeframe_ns % interval != 0:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "timeframe",
                        f"{timeframe_label(timeframe_ns)} is not a whole multiple of the run's "
                        f"bar interval ({timeframe_label(interval)})",
                    )
                ]
            )
        aggregated = timeframe_ns != interval
        return CandleWindow(lo, hi, timeframe_ns, aggregated, aligned_origin(timeframe_ns))
    if max_candles == 0 or hi - lo <= max_candles:
        return CandleWindow(lo, hi, interval, aggregated=False)
    first, last = int(times[lo]), int(times[hi - 1])

    def fits(width: int) -> bool:
        origin = aligned_origin(width)
        return (last - origin) // width - (first - origin) // width + 1 <= max_candles

    for width in STANDARD_TIMEFRAMES_NS:
        if width > interval and width % interval == 0 and fits(width):
            return CandleWindow(lo, hi, width, aggregated=True, origin_ns=aligned_origin(width))
    unit = math.lcm(_WEEK, interval)
    weeks = max(1, -(-(last - first + 1) // (unit * max_candles)))
    for multiple in range(weeks, weeks + _ALIGNMENT_TRIES):
        if fits(multiple * unit):
            width = multiple * unit
            return CandleWindow(lo, hi, width, aggregated=True, origin_ns=aligned_origin(width))
    # One or two buckets over a long window rarely fit the grid: align to its first candle.
    width = ((last - first) // (interval * max_candles) + 1) * interval
    return CandleWindow(lo, hi, width, aggregated=True, origin_ns=first)


def blocks(
    files: RunFiles, plan: CandleWindow, *, indicators: Sequence[str], chunk_size: int
) -> Iterator[CandleBlock]:
    """Yield the window's output candles in blocks of `chunk_size` (the last may be shorter)."""
    source = _raw_blocks if not plan.aggregated else _aggregated_blocks
    pending: list[CandleBlock] = []
    held = 0
    for block in source(files, plan, indicators, chunk_size):
        pending.append(block)
        held += len(block)
        while held >= chunk_size:
            merged = _concat(pending)
            yield _slice(merged, 0, chunk_size)
            rest = _slice(merged, chunk_size, len(merged))
            pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield _concat(pending)


def _raw_blocks(
    files: RunFiles, plan: CandleWindow, indicators: Sequence[str], chunk_size: int
) -> Iterator[CandleBlock]:
    for a in range(plan.lo, plan.hi, chunk_size):
        b = min(a + chunk_size, plan.hi)
        yield CandleBlock(
            times=files.candle_times[a:b],
            columns={name: files.candles[name][a:b] for name in OHLCV},
            indicators=[files.candles[name][a:b] for name in indicators],
        )


def _aggregated_blocks(
    files: RunFiles, plan: CandleWindow, indicators: Sequence[str], chunk_size: int
) -> Iterator[CandleBlock]:
    width, origin = plan.bucket_ns, plan.origin_ns
    # A coarser timeframe's indicators are the timeframe's own, as a trading chart shows them:
    # TA-Lib over its buckets, from up to WARMUP_BUCKETS buckets before the window.
    history = _history(files, plan) if indicators and plan.hi > plan.lo else None
    for a, b in _steps(files.candle_times, plan.lo, plan.hi, width, origin):
        block = aggregate(files, a, b, width=width, origin=origin)
        if history is None:
            yield block
            continue
        history = _joined(history, block)
        values = results.indicators(Candles(history.times, **history.columns))
        yield replace(block, indicators=[values[name][-len(block) :] for name in indicators])
        history = _slice(history, max(0, len(history) - WARMUP_BUCKETS), len(history))


def _steps(times: IntArray, lo: int, hi: int, width: int, origin: int) -> Iterator[tuple[int, int]]:
    """Cut source candles [lo, hi) into steps of about SOURCE_BLOCK, at bucket boundaries."""
    a = lo
    while a < hi:
        b = hi
        if a + SOURCE_BLOCK < hi:
            # Cut at a bucket boundary so no bucket spans two steps.
            boundary = origin + (int(times[a + SOURCE_BLOCK]) - origin) // width * width
            if boundary <= int(times[a]):
                boundary = origin + ((int(times[a]) - origin) // width + 1) * width
            b = a + int(np.searchsorted(times[a:hi], boundary, "left"))
        yield a, b
        a = b


def _history(files: RunFiles, plan: CandleWindow) -> CandleBlock:
    """Return the whole buckets before the window's candles, the last WARMUP_BUCKETS at most."""
    times, width, origin = files.candle_times, plan.bucket_ns, plan.origin_ns
    reach = WARMUP_BUCKETS * (width // files.manifest.bar_interval_ns)
    first = int(times[max(0, plan.lo - reach)])
    start = int(np.searchsorted(times, origin + (first - origin) // width * width, "left"))
    history = CandleBlock(
        times=times[:0], columns={n: files.candles[n][:0] for n in OHLCV}, indicators=[]
    )
    for a, b in _steps(times, start, plan.lo, width, origin):
        history = _joined(history, aggregate(files, a, b, width=width, origin=origin))
        history = _slice(history, max(0, len(history) - WARMUP_BUCKETS), len(history))
    return history


def _joined(history: CandleBlock, block: CandleBlock) -> CandleBlock:
    """Append a block's buckets to the history's, a bucket in both becoming one.

    That bucket is the window's first when the window starts inside it: its indicators count its
    candles before the window too, as they would on a chart of the whole run.
    """
    if not len(history) or history.times[-1] != block.times[0]:
        return _concat([history, block])
    old, new = history.columns, block.columns
    shared = {
        "open": old["open"][-1:],
        "high": np.maximum(old["high"][-1:], new["high"][:1]),
        "low": np.minimum(old["low"][-1:], new["low"][:1]),
        "close": new["close"][:1],
        "volume": old["volume"][-1:] + new["volume"][:1],
    }
    return CandleBlock(
        times=np.concatenate([history.times, block.times[1:]]),
        columns={n: np.concatenate([old[n][:-1], shared[n], new[n][1:]]) for n in OHLCV},
        indicators=[],
    )


def aggregate(files: RunFiles, a: int, b: int, *, width: int, origin: int) -> CandleBlock:
    """Aggregate source candles [a, b) into buckets of `width` nanoseconds from `origin`."""
    bucket = (files.candle_times[a:b] - origin) // width
    starts = np.concatenate(([0], np.flatnonzero(bucket[1:] != bucket[:-1]) + 1))
    last = np.append(starts[1:], b - a) - 1
    column = files.candles
    return CandleBlock(
        times=(origin + bucket[starts] * width).astype(np.int64),
        columns={
            "open": column["open"][a:b][starts],
            "high": np.maximum.reduceat(column["high"][a:b], starts),
            "low": np.minimum.reduceat(column["low"][a:b], starts),
            "close": column["close"][a:b][last],
            "volume": np.add.reduceat(column["volume"][a:b], starts),
        },
        indicators=[],
    )


def _concat(parts: list[CandleBlock]) -> CandleBlock:
    if len(parts) == 1:
        return parts[0]
    return CandleBlock(
        times=np.concatenate([p.times for p in parts]),
        columns={n: np.concatenate([p.columns[n] for p in parts]) for n in OHLCV},
        indicators=[
            np.concatenate([p.indicators[i] for p in parts])
            for i in range(len(parts[0].indicators))
        ],
    )


def _slice(block: CandleBlock, a: int, b: int) -> CandleBlock:
    return CandleBlock(
        times=block.times[a:b],
        columns={n: v[a:b] for n, v in block.columns.items()},
        indicators=[v[a:b] for v in block.indicators],
    )
