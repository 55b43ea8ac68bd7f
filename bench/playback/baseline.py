"""The naive baseline: what the old REST API did per request, measured in process (no network).

- candles: slice the candles, recompute the 11 indicators with pandas, return JSON records;
- portfolio state: replay every trade up to the instant, row by row, in Decimal;
- equity: the whole curve as JSON (no pages, no sampling);
- export: the candles file read with pandas and written as CSV in one piece.

Measured without HTTP, so the baseline is flattered, never handicapped.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench.playback.synthetic import START_CASH, Written


def candles_json(frame: pd.DataFrame, lo: int, hi: int) -> bytes:
    """Recompute the indicators of candles [lo, hi) and serialise them as the old API did."""
    window = frame.iloc[lo:hi].copy()
    close, high, low = window["close"], window["high"], window["low"]
    window["sma_20"] = close.rolling(20).mean()
    window["sma_50"] = close.rolling(50).mean()
    window["ema_20"] = close.ewm(span=20, adjust=False).mean()
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    window["rsi_14"] = 100 - 100 / (1 + gain / loss)
    fast = close.ewm(span=12, adjust=False).mean()
    slow = close.ewm(span=26, adjust=False).mean()
    window["macd"] = fast - slow
    window["macd_signal"] = window["macd"].ewm(span=9, adjust=False).mean()
    window["macd_histogram"] = window["macd"] - window["macd_signal"]
    true_range = pd.concat(
        [high - low, (high - close.shift()).abs(), (low - close.shift()).abs()], axis=1
    ).max(axis=1)
    window["atr_14"] = true_range.ewm(alpha=1 / 14, adjust=False).mean()
    middle = close.rolling(20).mean()
    std = close.rolling(20).std(ddof=0)
    window["bollinger_upper"] = middle + 2 * std
    window["bollinger_middle"] = middle
    window["bollinger_lower"] = middle - 2 * std
    return json.dumps(window.to_dict(orient="records")).encode()


def trades(run: Written) -> list[dict[str, Any]]:
    """The run's trades as rows, as the old API loaded them (preloaded here, for free)."""
    return [
        {"time": int(t), "side": str(s), "quantity": str(run.quantity), "price": f"{p:.2f}"}
        for t, s, p in zip(run.fill_times, run.fill_sides, run.fill_prices, strict=True)
    ]


def trades_page_json(path: Path, start_ns: int, size: int) -> bytes:
    """Load every round trip, keep those exiting from `start_ns`, serialise a page of them."""
    rows = pq.read_table(path).to_pylist()
    page = [row for row in rows if row["exit_time"] >= start_ns][:size]
    return json.dumps(page).encode()


def portfolio_json(rows: list[dict[str, Any]], until_ns: int) -> bytes:
    """Replay every trade up to `until_ns` one by one and serialise the state."""
    position = average = realized = fees = Decimal(0)
    cash = Decimal(str(START_CASH))
    count = 0
    mark = Decimal(0)
    for row in rows:
        if row["time"] > until_ns:
            break
        count += 1
        quantity, price = Decimal(row["quantity"]), Decimal(row["price"])
        signed = quantity if row["side"] == "BUY" else -quantity
        fee = (price * quantity * Decimal("0.001")).quantize(Decimal("1e-8"))
        fees += fee
        cash -= fee
        if position == 0 or (position > 0) == (signed > 0):
            total = position + signed
            average = (average * abs(position) + price * abs(signed)) / abs(total)
            position = total
        else:
            closed = min(abs(signed), abs(position))
            booked = closed * (price - average) * (1 if position > 0 else -1)
            realized += booked
            cash += booked
            position += signed
            if position == 0:
                average = Decimal(0)
        mark = price
    unrealized = position * (mark - average)
    return json.dumps(
        {
            "fill_count": count,
            "cash": str(cash),
            "equity": str(cash + unrealized),
            "realized_pnl": str(realized),
            "unrealized_pnl": str(unrealized),
            "fees": str(fees),
            "position": str(position),
            "average_price": str(average),
        }
    ).encode()


def equity_json(times: np.ndarray, values: np.ndarray) -> bytes:
    """Serialise the whole equity curve as JSON records."""
    return json.dumps(
        [{"time": int(t), "equity": float(v)} for t, v in zip(times, values, strict=True)]
    ).encode()


def candles_csv(candles_file: Path) -> bytes:
    """Read a run's candles and write them as one CSV, as a script with pandas would."""
    return pd.read_parquet(candles_file).to_csv(index=False).encode()
