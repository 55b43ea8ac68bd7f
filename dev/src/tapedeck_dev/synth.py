"""Synthetic market data for demos and benchmarks: minute bars with volatility clustering, and
trade ticks that follow any one-minute bars (generated, or real ones such as the BTC perpetual's).

The price model (documented for users of the demo):
- one-minute log returns r_t = sigma_t * z_t, with z_t Student-t (4 degrees of freedom, scaled to
  unit variance: fat tails) and GARCH(1,1) variance sigma_t^2 = omega + alpha * r_{t-1}^2 +
  beta * sigma_{t-1}^2, alpha = 0.08, beta = 0.90 (calm and turbulent spells cluster), omega set
  so the long-run volatility is `annual_volatility` (default 60%, bitcoin-like);
- volume per minute is log-normal and rises with the size of the move;
- ticks within a minute: the count is proportional to the minute's volume; prices follow a
  Brownian bridge from the bar's open to its close, mapped monotonically so the path touches the
  bar's high and low exactly; times are spread through the minute in order; sizes are
  log-normal; the aggressor is the buyer on up-ticks and the seller on down-ticks, 20% noise.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

MINUTE_NS = 60_000_000_000
MINUTES_PER_YEAR = 525_600
DEMO_START_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MinuteBars:
    """One-minute bars as columns; `open_ns` is each bar's open time."""

    open_ns: Ints
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats

    def __len__(self) -> int:
        return len(self.open_ns)


def generate_bars(
    minutes: int,
    *,
    start_ns: int = DEMO_START_NS,
    start_price: float = 42_000.0,
    annual_volatility: float = 0.6,
    seed: int = 7,
) -> MinuteBars:
    """Return `minutes` one-minute bars from the GARCH(1,1) Student-t model above."""
    rng = np.random.default_rng(seed)
    alpha, beta = 0.08, 0.90
    long_run = (annual_volatility**2) / MINUTES_PER_YEAR
    omega = long_run * (1.0 - alpha - beta)
    dof = 4.0
    shocks = rng.standard_t(dof, size=minutes) / np.sqrt(dof / (dof - 2.0))
    returns = np.empty(minutes)
    variance = long_run
    previous = 0.0
    for i in range(minutes):  # a recursion: each variance depends on the last return
        variance = omega + alpha * previous * previous + beta * variance
        previous = float(np.sqrt(variance) * shocks[i])
        returns[i] = previous
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[start_price], close[:-1]])
    # Intra-minute range: a Brownian-bridge-like excursion beyond the open/close, in proportion.
    spread = np.abs(rng.normal(0.0, 1.0, minutes)) * np.sqrt(long_run) * 0.5 * open_
    high = np.maximum(open_, close) + spread * rng.uniform(0.2, 1.0, minutes)
    low = np.minimum(open_, close) - spread * rng.uniform(0.2, 1.0, minutes)
    move = np.abs(returns) / np.sqrt(long_run)
    volume = np.exp(rng.normal(2.0, 0.5, minutes)) * (1.0 + move)
    return MinuteBars(
        open_ns=start_ns + MINUTE_NS * np.arange(minutes, dtype=np.int64),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


def read_minute_bars(path: Path) -> MinuteBars:
    """Read bars `timestamp, open, high, low, close[, volume]` from a CSV (e.g. the BTC perp's)."""
    table = pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(timestamp_parsers=[pacsv.ISO8601])
    )
    times = table.column("timestamp").cast(pa.timestamp("ns")).cast(pa.int64())

    def column(name: str) -> Floats:
        return np.asarray(table.column(name).to_numpy(), dtype=np.float64)

    volume = column("volume") if "volume" in table.column_names else np.ones(table.num_rows)
    return MinuteBars(
        open_ns=np.asarray(times.to_numpy(), dtype=np.int64),
        open=column("open"),
        high=column("high"),
        low=column("low"),
        close=column("close"),
        volume=volume,
    )


def ticks_from_bars(
    bars: MinuteBars,
    ticks: int,
    *,
    price_precision: int = 2,
    size_precision: int = 6,
    seed: int = 11,
) -> pa.Table:
    """Return about `ticks` trade ticks (columns ts, price, size, side, trade_id) that follow `bars`."""
    rng = np.random.default_rng(seed)
    n_bars = len(bars)
    weights = np.maximum(np.nan_to_num(bars.volume, nan=1.0), 1e-9)
    counts = np.maximum(np.floor(weights / weights.sum() * ticks).astype(np.int64), 4)
    total = int(counts.sum())
    bar = np.repeat(np.arange(n_bars), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(total) - starts[bar]
    span = (counts - 1)[bar].astype(np.float64)
    t = position / span

    # A Brownian bridge per bar: segmented cumulative sums pinned to zero at both ends.
    steps = rng.standard_normal(total)
    steps[starts] = 0.0
    walk = np.cumsum(steps)
    walk -= walk[starts][bar]
    ends = starts + counts - 1
    bridge = walk - t * walk[ends][bar]

    open_, close = bars.open[bar], bars.close[bar]
    low_oc = np.minimum(bars.open, bars.close)
    high_oc = np.maximum(bars.open, bars.close)
    scale = (bars.high - bars.low + 1e-12)[bar] / np.sqrt(counts[bar])
    path = open_ + (close - open_) * t + bridge * scale

    # Two distinct interior ticks per bar (counts >= 4) are pushed outside the open/close range,
    # one below and one above, so every bar's path can be mapped onto both its low and its high.
    first = 1 + (rng.random(n_bars) * (counts - 2)).astype(np.int64)
    second = 1 + (rng.random(n_bars) * (counts - 3)).astype(np.int64)
    second += second >= first
    nudge = 0.5 * (bars.high - bars.low + 1e-12)
    down_at, up_at = starts + first, starts + second
    path[down_at] = np.minimum(path[down_at], low_oc - nudge)
    path[up_at] = np.maximum(path[up_at], high_oc + nudge)
    path_min = np.minimum.reduceat(path, starts)[bar]
    path_max = np.maximum.reduceat(path, starts)[bar]

    # Monotone piecewise-linear map: path min -> low, path max -> high, open/close unchanged.
    low, high = bars.low[bar], bars.high[bar]
    lo, hi = low_oc[bar], high_oc[bar]
    with np.errstate(divide="ignore", invalid="ignore"):
        down = low + (path - path_min) * (lo - low) / (lo - path_min)
        up = hi + (path - hi) * (high - hi) / (path_max - hi)
    price = np.where(path < lo, down, np.where(path > hi, up, path))
    price = np.round(np.clip(price, low, high), price_precision)
    price = np.maximum(price, 10.0**-price_precision)

    jitter = rng.uniform(0.05, 0.95, total)
    ts = bars.open_ns[bar] + ((position + jitter) / counts[bar] * MINUTE_NS).astype(np.int64)
    size = np.round(np.exp(rng.normal(-4.0, 1.2, total)), size_precision)
    size = np.maximum(size, 10.0**-size_precision)
    change = np.diff(price, prepend=price[0])
    buyer = np.where(change == 0, rng.random(total) < 0.5, change > 0)
    buyer ^= rng.random(total) < 0.2
    return pa.table(
        {
            "ts": pa.array(ts, type=pa.int64()),
            "price": pa.array(price),
            "size": pa.array(size),
            "side": pa.array(np.where(buyer, "BUY", "SELL")),
            "trade_id": pa.array(np.arange(1, total + 1, dtype=np.int64)),
        }
    )


def write_ticks(table: pa.Table, path: Path) -> Path:
    """Write ticks as Parquet or CSV (by extension), creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=250_000)
    return path


def demo_ticks(ticks: int = 1_000_000, *, seed: int = 7) -> pa.Table:
    """Return the demo's trade ticks: generated bars (about 20 ticks a minute) and ticks on them."""
    minutes = max(ticks // 20, 10)
    return ticks_from_bars(generate_bars(minutes, seed=seed), ticks, seed=seed + 1)


def main() -> None:
    """Write generated trade ticks: `tapedeck-synth OUT [--ticks N] [--bars CSV]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="output file, .parquet or .csv")
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--bars", type=Path, help="follow these one-minute bars (CSV)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.bars is not None:
        table = ticks_from_bars(read_minute_bars(args.bars), args.ticks, seed=args.seed)
    else:
        table = demo_ticks(args.ticks, seed=args.seed)
    write_ticks(table, args.out)


if __name__ == "__main__":
    main()
