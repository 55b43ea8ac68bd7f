"""Synthetic finished runs in the runs writer's result layout (see `tapedeck_backtest.runs.results`).

Vectorised, so a million fills or ten million equity points take seconds: the runs writer's
Decimal loop is exact but meant for one run's real fills, not for generating benchmark sizes.
Fills alternate a buy and a sell of the same size (open, close), which keeps the cumulative
portfolio arrays closed-form. Equity-only runs carry a small candles file: StreamEquity reads
only the equity columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tapedeck_backtest.runs.results import ROW_GROUP_SIZE, Candles, indicators
from tapedeck_backtest.runs.trades import Trade
from tapedeck_backtest.runs.trades import table as trades_table

MINUTE = 60_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
START_CASH = 1_000_000.0


@dataclass(frozen=True)
class Written:
    """A written run: its id and what a baseline needs to replay it."""

    run_id: str
    candles: Candles
    fill_times: np.ndarray
    fill_prices: np.ndarray
    fill_sides: np.ndarray
    quantity: float
    equity_times: np.ndarray
    equity_values: np.ndarray


def _walk(count: int, rng: np.random.Generator) -> np.ndarray:
    return np.round(40_000 + np.cumsum(rng.normal(0, 8, count)), 2)


def _candles(count: int, rng: np.random.Generator) -> Candles:
    close = _walk(count, rng)
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0, 6, count))
    return Candles(
        times=T0 + np.arange(count, dtype=np.int64) * MINUTE,
        open=open_,
        high=np.round(np.maximum(open_, close) + spread, 2),
        low=np.round(np.minimum(open_, close) - spread, 2),
        close=close,
        volume=np.round(rng.uniform(0.1, 50, count), 4),
    )


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.float64()), pa.string())


def write_run(
    results_root: Path, run_id: str, *, candles: int, fills: int, equity_points: int, seed: int
) -> Written:
    """Write one run; `equity_points` 0 means the writer's curve (bar closes and fills)."""
    rng = np.random.default_rng(seed)
    directory = results_root / run_id
    directory.mkdir(parents=True, exist_ok=True)
    bars = _candles(candles, rng)
    columns: dict[str, pa.Array] = {
        "time": pa.array(bars.times, pa.int64()),
        "open": pa.array(bars.open),
        "high": pa.array(bars.high),
        "low": pa.array(bars.low),
        "close": pa.array(bars.close),
        "volume": pa.array(bars.volume),
    }
    for name, values in indicators(bars).items():
        columns[name] = pa.array(values, pa.float64(), from_pandas=False)
    pq.write_table(pa.table(columns), directory / "candles.parquet", row_group_size=ROW_GROUP_SIZE)

    # Fills spread over the candles' span, alternating buy and sell of one size.
    span = max(candles, 1) * MINUTE
    fills = fills - fills % 2
    fill_times = T0 + np.sort(rng.integers(0, span, fills)).astype(np.int64)
    prices = np.round(40_000 + np.cumsum(rng.normal(0, 3, fills)), 2)
    quantity = 0.01
    sides = np.where(np.arange(fills) % 2 == 0, "BUY", "SELL")
    commission = np.round(prices * quantity * 0.001, 8)
    pq.write_table(
        pa.table(
            {
                "time": pa.array(fill_times, pa.int64()),
                "fill_id": pa.array([f"T-{i}" for i in range(fills)], pa.string()),
                "order_id": pa.array([f"O-{i}" for i in range(fills)], pa.string()),
                "position_id": pa.array([f"P-{i // 2}" for i in range(fills)], pa.string()),
                "instrument_id": pa.array(["BTCUSDT.BINANCE"] * fills, pa.string()),
                "side": pa.array(sides, pa.string()),
                "quantity": pa.array([str(quantity)] * fills, pa.string()),
                "price": _text(prices),
                "commission": _text(commission),
                "commission_currency": pa.array(["USDT"] * fills, pa.string()),
                "signed_quantity": pa.array(np.where(sides == "BUY", quantity, -quantity)),
                "price_f": pa.array(prices),
            }
        ),
        directory / "fills.parquet",
        row_group_size=ROW_GROUP_SIZE,
    )
    is_buy = np.arange(fills) % 2 == 0
    position = np.where(is_buy, quantity, 0.0)
    average = np.where(is_buy, prices, 0.0)
    opened = np.concatenate(([0.0], prices[:-1]))
    realized = np.cumsum(np.where(is_buy, 0.0, quantity * (prices - opened)))
    fees = np.cumsum(commission)
    cash = START_CASH + realized - fees
    base = np.zeros(fills)
    portfolio: dict[str, pa.Array] = {
        "time": pa.array(fill_times, pa.int64()),
        "fill_count": pa.array(np.arange(1, fills + 1), pa.int64()),
    }
    arrays = {
        "position": position,
        "average_price": average,
        "realized_pnl": realized,
        "fees": fees,
        "cash": cash,
        "base_balance": base,
    }
    for name, values in arrays.items():
        portfolio[name] = pa.array(values)
    for name, values in arrays.items():
        portfolio[f"{name}_dec"] = _text(values)
    pq.write_table(
        pa.table(portfolio), directory / "portfolio.parquet", row_group_size=ROW_GROUP_SIZE
    )

    if equity_points:
        equity_times = T0 + np.arange(equity_points, dtype=np.int64) * 1_000_000_000
        equity_values = START_CASH + np.cumsum(rng.normal(0, 25, equity_points))
        marks = _walk(equity_points, rng)
        kinds = np.zeros(equity_points, np.uint8)
    else:
        close_times = bars.times + MINUTE
        equity_times = np.concatenate((close_times, fill_times))
        order = np.argsort(equity_times, kind="stable")
        equity_times = equity_times[order]
        marks = np.concatenate((bars.close, prices))[order]
        kinds = np.concatenate((np.zeros(candles, np.uint8), np.ones(fills, np.uint8)))[order]
        equity_values = START_CASH + rng.normal(0, 100, equity_times.size).cumsum()
    pq.write_table(
        pa.table(
            {
                "time": pa.array(equity_times, pa.int64()),
                "equity": pa.array(equity_values),
                "mark": pa.array(marks),
                "kind": pa.array(kinds, pa.uint8()),
            }
        ),
        directory / "equity.parquet",
        row_group_size=ROW_GROUP_SIZE,
    )
    # Each buy and the next sell are one round trip.
    fees_text = [str(f) for f in _text(commission[0::2] + commission[1::2]).to_pylist()]
    pnl_text = _text(quantity * (prices[1::2] - prices[0::2]) - commission[0::2] - commission[1::2])
    trades = [
        Trade(
            trade_id=f"P-{i}#1",
            position_id=f"P-{i}",
            side="LONG",
            quantity=Decimal(str(quantity)),
            entry_time=int(fill_times[2 * i]),
            exit_time=int(fill_times[2 * i + 1]),
            average_entry_price=Decimal(repr(float(prices[2 * i]))),
            average_exit_price=Decimal(repr(float(prices[2 * i + 1]))),
            realized_pnl=Decimal(pnl),
            fees=Decimal(fee),
            mae=0.0,
            mfe=0.0,
        )
        for i, (pnl, fee) in enumerate(zip(pnl_text.to_pylist(), fees_text, strict=True))
    ]
    pq.write_table(
        trades_table(trades), directory / "trades.parquet", row_group_size=ROW_GROUP_SIZE
    )
    for name in ("positions", "account"):
        pq.write_table(
            pa.table({"position_id": pa.array([], pa.string())}), directory / f"{name}.parquet"
        )
    manifest = {
        "format": "tapedeck-run-results/1",
        "run_id": run_id,
        "instrument_id": "BTCUSDT.BINANCE",
        "quote_currency": "USDT",
        "base_currency": "BTC",
        "account_type": "MARGIN",
        "bar_interval_ns": MINUTE,
        "start_ns": T0,
        "end_ns": T0 + span,
        "starting_balances": [["USDT", str(START_CASH)]],
        "rows": {
            "candles.parquet": candles,
            "fills.parquet": fills,
            "equity.parquet": int(equity_times.size),
        },
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return Written(
        run_id=run_id,
        candles=bars,
        fill_times=fill_times,
        fill_prices=prices,
        fill_sides=sides,
        quantity=quantity,
        equity_times=equity_times,
        equity_values=equity_values,
    )
