"""A finished run's results as Parquet files, written once, and the stats drawn from them.

Layout of `<data_dir>/runs/<run_id>/` (all times int64 nanoseconds since the epoch, UTC):

- `manifest.json`: format, run id, instrument, currencies, account type, bar interval, window,
  starting balances, row counts, and the equity formula below.
- `candles.parquet`: `time` (candle open), `open`, `high`, `low`, `close`, `volume`, then one
  float64 column per indicator (TA-Lib; NaN during warm-up): `sma_20`, `sma_50`, `ema_20`,
  `rsi_14`, `macd`, `macd_signal`, `macd_histogram`, `atr_14`, `bollinger_upper`,
  `bollinger_middle`, `bollinger_lower`.
- `fills.parquet`: one row per fill in time order: `time`, `fill_id`, `order_id`,
  `position_id`, `instrument_id`, `side` (BUY/SELL), `quantity`, `price`, `commission`,
  `commission_currency` (exact decimal strings), `signed_quantity`, `price_f` (float64).
- `portfolio.parquet`: the portfolio after each fill (same rows as fills): `time`,
  `fill_count`, `position`, `average_price`, `realized_pnl` (gross of fees), `fees`, `cash`
  (quote-currency balance), `base_balance`, as float64, and the same as exact decimal strings
  with a `_dec` suffix. The portfolio at instant t is the last row with `time <= t` (binary
  search) marked at the last price at or before t (see `equity.parquet`'s `mark`):
  unrealized = position * (mark - average_price);
  equity = cash + base_balance * mark (CASH) or cash + base_balance * mark + unrealized (MARGIN).
- `equity.parquet`: `time`, `equity`, `mark`, `kind` (0 a bar closes then, 1 fills only): marked at
  every candle close (time = candle open + interval) and at every fill's time, one point per
  instant with strictly increasing times: the state after everything at that instant (the last
  fill's, when an instant has fills).
- `positions.parquet`: NautilusTrader's positions report: `position_id`, `entry`,
  `opened`, `closed` (0 if open), `peak_quantity`, `average_open`, `average_close`,
  `realized_pnl`, `commissions` (decimal strings), `realized_return`.
- `account.parquet`: NautilusTrader's account report: `time`, `currency`, `total`, `free`,
  `locked` (decimal strings), for audit.
- `trades.parquet`: one row per round trip, by exit time (see `runs/trades.py`): `trade_id`,
  `position_id`, `side` (LONG/SHORT), `quantity`, `entry_time`, `exit_time`,
  `average_entry_price`, `average_exit_price`, `realized_pnl` (net of fees), `fees` (decimal
  strings), `mae`, `mfe` (float64, quote currency).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import talib

from tapedeck_backtest import storage
from tapedeck_backtest.runs import stats as stats_math
from tapedeck_backtest.runs.domain import AccountKind, Fill, Holdings, Stats, book, equity
from tapedeck_backtest.runs.trades import Trade
from tapedeck_backtest.runs.trades import table as trades_table

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RESULT_FILES = (
    "candles.parquet",
    "fills.parquet",
    "portfolio.parquet",
    "equity.parquet",
    "positions.parquet",
    "account.parquet",
    "trades.parquet",
)
INDICATOR_COLUMNS = (
    "sma_20",
    "sma_50",
    "ema_20",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_histogram",
    "atr_14",
    "bollinger_upper",
    "bollinger_middle",
    "bollinger_lower",
)
ROW_GROUP_SIZE = 65_536
# Written last: a run directory with its manifest is whole (an object store has no rename).
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PriceSeries:
    """The prices a run saw, in time order: trade prices, quote mids or bar closes."""

    times: IntArray
    prices: FloatArray
    volumes: FloatArray


@dataclass(frozen=True)
class Candles:
    """OHLCV candles keyed by open time."""

    times: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray


@dataclass(frozen=True)
class RunContext:
    """What the result writer needs to know about the run besides the engine's reports."""

    run_id: str
    instrument_id: str
    quote_currency: str
    base_currency: str | None
    account_type: AccountKind
    starting_balances: tuple[tuple[str, Decimal], ...]
    start_ns: int
    end_ns: int
    bar_interval_ns: int
    run_seconds: float
    periods_per_year: int  # annualisation of daily figures: 252 or 365


def candles_from_prices(series: PriceSeries, *, interval_ns: int) -> Candles:
    """Aggregate prices into candles of `interval_ns`, each keyed by its open time."""
    if series.times.size == 0:
        empty_f = np.empty(0)
        return Candles(np.empty(0, np.int64), empty_f, empty_f, empty_f, empty_f, empty_f)
    # One temporary the size of the series (5M ticks: 40 MB), bucket numbers computed in place.
    buckets = series.times // interval_ns
    starts = np.concatenate(([0], np.flatnonzero(buckets[1:] != buckets[:-1]) + 1))
    ends = np.append(starts[1:], series.times.size)
    opens = buckets[starts].astype(np.int64) * interval_ns
    del buckets
    return Candles(
        times=opens,
        open=series.prices[starts],
        high=np.maximum.reduceat(series.prices, starts),
        low=np.minimum.reduceat(series.prices, starts),
        close=series.prices[ends - 1],
        volume=np.add.reduceat(series.volumes, starts),
    )


def aggregate_candles(candles: Candles, *, interval_ns: int) -> Candles:
    """Merge candles into wider buckets of `interval_ns` (first open, max high, min low, last close)."""
    if candles.times.size == 0:
        return candles
    buckets = (candles.times // interval_ns) * interval_ns
    starts = np.concatenate(([0], np.flatnonzero(np.diff(buckets)) + 1))
    ends = np.append(starts[1:], candles.times.size)
    return Candles(
        times=buckets[starts].astype(np.int64),
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends - 1],
        volume=np.add.reduceat(candles.volume, starts),
    )


def indicators(candles: Candles) -> dict[str, FloatArray]:
    """Compute every indicator column with TA-Lib's definitions."""
    close, high, low = candles.close, candles.high, candles.low
    macd, signal, histogram = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    upper, middle, lower = talib.BBANDS(
        close,
        timeperiod=20,
        nbdevup=2.0,
        nbdevdn=2.0,
        matype=talib.MA_Type.SMA,  # type: ignore[attr-defined]
    )
    return {
        "sma_20": talib.SMA(close, timeperiod=20),
        "sma_50": talib.SMA(close, timeperiod=50),
        "ema_20": talib.EMA(close, timeperiod=20),
        "rsi_14": talib.RSI(close, timeperiod=14),
        "macd": macd,
        "macd_signal": signal,
        "macd_histogram": histogram,
        "atr_14": talib.ATR(high, low, close, timeperiod=14),
        "bollinger_upper": upper,
        "bollinger_middle": middle,
        "bollinger_lower": lower,
    }


def fills_from_report(report: Any) -> list[Fill]:
    """Convert NautilusTrader's fills report (one row per fill) into exact fills in time order."""
    if report is None or len(report) == 0:
        return []
    fills: list[Fill] = []
    for order_id, row in report.iterrows():
        amount, _, currency = str(row["commission"]).partition(" ")
        fills.append(
            Fill(
                time=int(row["ts_event"].value),
                fill_id=str(row["trade_id"]),
                order_id=str(order_id),
                position_id=str(row["position_id"]),
                instrument_id=str(row["instrument_id"]),
                side=str(row["order_side"]),
                quantity=Decimal(str(row["last_qty"])),
                price=Decimal(str(row["last_px"])),
                commission=Decimal(amount),
                commission_currency=currency,
            )
        )
    fills.sort(key=lambda f: f.time)  # stable: the engine's order within one instant is kept
    return fills


def write_results(
    *,
    directory: str,
    context: RunContext,
    prices: PriceSeries,
    candles: Candles,
    fills: list[Fill],
    positions_report: Any,
    account_report: Any,
    trades: list[Trade],
    trade_figures: stats_math.TradeFigures,
) -> Stats:
    """Write every result file into `directory` (a path or URL) atomically; return the stats."""
    portfolio = _portfolio(context, fills)
    marks_at_fills = _marks_at(prices, np.array([f.time for f in fills], dtype=np.int64))
    equity_times, equity_values, equity_marks, equity_kinds = _equity_curve(
        context, candles, portfolio, marks_at_fills
    )
    stats = _stats(
        context=context,
        prices=prices,
        portfolio=portfolio,
        fills=fills,
        equity_times=equity_times,
        equity=equity_values,
        trades=trade_figures,
    )
    tables = {
        "candles.parquet": _candles_table(candles),
        "fills.parquet": _fills_table(fills),
        "portfolio.parquet": portfolio.table(),
        "equity.parquet": pa.table(
            {
                "time": pa.array(equity_times, pa.int64()),
                "equity": pa.array(equity_values, pa.float64()),
                "mark": pa.array(equity_marks, pa.float64()),
                "kind": pa.array(equity_kinds, pa.uint8()),
            }
        ),
        "positions.parquet": _positions(positions_report),
        "account.parquet": _account_table(account_report),
        "trades.parquet": trades_table(trades),
    }
    manifest = {
        "format": "tapedeck-run-results/1",
        "run_id": context.run_id,
        "instrument_id": context.instrument_id,
        "quote_currency": context.quote_currency,
        "base_currency": context.base_currency,
        "account_type": context.account_type.value,
        "bar_interval_ns": context.bar_interval_ns,
        "start_ns": context.start_ns,
        "end_ns": context.end_ns,
        "starting_balances": [[c, str(a)] for c, a in context.starting_balances],
        "rows": {name: table.num_rows for name, table in tables.items()},
        "equity_formula": {
            "CASH": "cash + base_balance * mark",
            "MARGIN": "cash + base_balance * mark + position * (mark - average_price)",
        },
        "stats": json.loads(stats.to_json()),
    }
    local = storage.local_path(directory)
    if local is not None:  # staged beside the target, so that publishing is a rename
        local.parent.mkdir(parents=True, exist_ok=True)
    name = directory.rstrip("/").rsplit("/", 1)[-1]
    staging = Path(
        tempfile.mkdtemp(prefix=f".{name}.", dir=None if local is None else local.parent)
    )
    try:
        for file, table in tables.items():
            pq.write_table(table, staging / file, row_group_size=ROW_GROUP_SIZE)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        storage.remove(directory)  # a re-run after a dead worker replaces partial leftovers
        storage.publish(staging, directory, last=MANIFEST)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return stats


_HOLDINGS = ("position", "average_price", "realized_pnl", "fees", "cash", "base_balance")


@dataclass(frozen=True)
class _Portfolio:
    start: Holdings
    times: list[int]
    after: list[Holdings]  # after each fill

    def column(self, name: str) -> FloatArray:
        return np.array([float(getattr(h, name)) for h in self.after], dtype=np.float64)

    def table(self) -> pa.Table:
        columns: dict[str, pa.Array] = {
            "time": pa.array(self.times, pa.int64()),
            "fill_count": pa.array(np.arange(1, len(self.times) + 1), pa.int64()),
        }
        for name in _HOLDINGS:
            columns[name] = pa.array(self.column(name), pa.float64())
        for name in _HOLDINGS:
            columns[f"{name}_dec"] = pa.array(
                [str(getattr(h, name)) for h in self.after], pa.string()
            )
        return pa.table(columns)


def _portfolio(context: RunContext, fills: list[Fill]) -> _Portfolio:
    holdings = start = Holdings.starting(
        context.starting_balances,
        quote_currency=context.quote_currency,
        base_currency=context.base_currency,
    )
    after = []
    for fill in fills:
        holdings = book(
            holdings, fill, account=context.account_type, base_currency=context.base_currency
        )
        after.append(holdings)
    return _Portfolio(start, [fill.time for fill in fills], after)


def _marks_at(prices: PriceSeries, times: IntArray) -> FloatArray:
    """Return the last price at or before each time (the first price before the data starts)."""
    if prices.times.size == 0:
        return np.full(times.size, math.nan)
    index = np.searchsorted(prices.times, times, side="right") - 1
    return prices.prices[np.clip(index, 0, None)]


def _equity_curve(
    context: RunContext, candles: Candles, portfolio: _Portfolio, fill_marks: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray, npt.NDArray[np.uint8]]:
    fill_times = np.array(portfolio.times, dtype=np.int64)
    cash = portfolio.column("cash")
    base = portfolio.column("base_balance")
    position = portfolio.column("position")
    average = portfolio.column("average_price")
    close_times = candles.times + context.bar_interval_ns
    # The portfolio at a bar close is the one after the last fill strictly before the close.
    before = np.searchsorted(fill_times, close_times, side="left") - 1
    has_fill = before >= 0
    pick = np.clip(before, 0, None)

    def at_close(values: FloatArray, initial: float) -> FloatArray:
        if values.size == 0:
            return np.full(close_times.size, initial)
        return np.where(has_fill, values[pick], initial)

    bar_equity = equity(
        context.account_type,
        cash=at_close(cash, float(portfolio.start.cash)),
        base=at_close(base, float(portfolio.start.base_balance)),
        position=at_close(position, 0.0),
        average_price=at_close(average, 0.0),
        mark=candles.close,
    )
    fill_equity = equity(
        context.account_type,
        cash=cash,
        base=base,
        position=position,
        average_price=average,
        mark=fill_marks,
    )
    times = np.concatenate((close_times, fill_times))
    kinds = np.concatenate(
        (np.zeros(close_times.size, np.uint8), np.ones(fill_times.size, np.uint8))
    )
    order = np.lexsort((kinds, times))
    times = times[order]
    # One point per instant, the state after everything at it: the last of each time (after the
    # bar close come that instant's fills, in the engine's order).
    changes = times[1:] != times[:-1]
    last = np.append(changes, True) if times.size else np.empty(0, np.bool_)
    first = np.insert(changes, 0, True) if times.size else np.empty(0, np.bool_)
    keep = order[last]
    return (
        times[last],
        np.concatenate((bar_equity, fill_equity))[keep],
        np.concatenate((candles.close, fill_marks))[keep],
        kinds[order][first],  # 0 when a bar closes at the instant (sorted first), else 1
    )


def _exact_equity(context: RunContext, portfolio: _Portfolio, mark: Decimal) -> Decimal:
    last = portfolio.after[-1] if portfolio.after else portfolio.start
    return equity(
        context.account_type,
        cash=last.cash,
        base=last.base_balance,
        position=last.position,
        average_price=last.average_price,
        mark=mark,
    )


def _stats(
    *,
    context: RunContext,
    prices: PriceSeries,
    portfolio: _Portfolio,
    fills: list[Fill],
    equity_times: IntArray,
    equity: FloatArray,
    trades: stats_math.TradeFigures,
) -> Stats:
    first_mark = Decimal(repr(float(prices.prices[0]))) if prices.prices.size else Decimal(0)
    last_mark = Decimal(repr(float(prices.prices[-1]))) if prices.prices.size else Decimal(0)
    starting = portfolio.start.cash + portfolio.start.base_balance * first_mark
    ending = _exact_equity(context, portfolio, last_mark)
    positions_after = portfolio.column("position")
    daily = stats_math.daily_figures(
        stats_math.daily_returns(equity_times, equity, starting_equity=float(starting)),
        periods_per_year=context.periods_per_year,
    )
    return Stats(
        total_return=float(ending / starting - 1) if starting != 0 else math.nan,
        pnl=str(ending - starting),
        sharpe_ratio=daily.sharpe_ratio,
        sortino_ratio=daily.sortino_ratio,
        max_drawdown=stats_math.max_drawdown(equity),
        win_rate=trades.win_rate,
        profit_factor=trades.profit_factor,
        trade_count=trades.trade_count,
        exposure=stats_math.exposure(
            np.array(portfolio.times, dtype=np.int64),
            positions_after,
            start_ns=context.start_ns,
            end_ns=context.end_ns,
        ),
        fees=str(portfolio.after[-1].fees if portfolio.after else Decimal(0)),
        starting_equity=str(starting),
        ending_equity=str(ending),
        fill_count=len(fills),
        run_seconds=context.run_seconds,
        periods_per_year=daily.periods_per_year,
        daily_returns=daily.daily_returns,
        cagr=daily.cagr,
        annual_volatility=daily.annual_volatility,
        calmar_ratio=daily.calmar_ratio,
        best_day=daily.best_day,
        worst_day=daily.worst_day,
        max_drawdown_seconds=stats_math.max_drawdown_duration(equity_times, equity) / 1e9,
        expectancy=trades.expectancy,
        average_win=trades.average_win,
        average_loss=trades.average_loss,
        average_holding_seconds=trades.average_holding_seconds,
    )


def _candles_table(candles: Candles) -> pa.Table:
    columns: dict[str, Any] = {
        "time": pa.array(candles.times, pa.int64()),
        "open": candles.open,
        "high": candles.high,
        "low": candles.low,
        "close": candles.close,
        "volume": candles.volume,
    }
    for name, values in indicators(candles).items():
        columns[name] = pa.array(values, pa.float64(), from_pandas=False)
    return pa.table(columns)


def _fills_table(fills: list[Fill]) -> pa.Table:
    return pa.table(
        {
            "time": pa.array([f.time for f in fills], pa.int64()),
            "fill_id": pa.array([f.fill_id for f in fills], pa.string()),
            "order_id": pa.array([f.order_id for f in fills], pa.string()),
            "position_id": pa.array([f.position_id for f in fills], pa.string()),
            "instrument_id": pa.array([f.instrument_id for f in fills], pa.string()),
            "side": pa.array([f.side for f in fills], pa.string()),
            "quantity": pa.array([str(f.quantity) for f in fills], pa.string()),
            "price": pa.array([str(f.price) for f in fills], pa.string()),
            "commission": pa.array([str(f.commission) for f in fills], pa.string()),
            "commission_currency": pa.array([f.commission_currency for f in fills], pa.string()),
            "signed_quantity": pa.array([float(f.signed_quantity) for f in fills], pa.float64()),
            "price_f": pa.array([float(f.price) for f in fills], pa.float64()),
        }
    )


def _money_amount(value: Any) -> str:
    return str(value).partition(" ")[0]


def _positions(report: Any) -> pa.Table:
    rows: dict[str, list[Any]] = {
        "position_id": [],
        "entry": [],
        "opened": [],
        "closed": [],
        "peak_quantity": [],
        "average_open": [],
        "average_close": [],
        "realized_pnl": [],
        "commissions": [],
        "realized_return": [],
    }
    if report is not None and len(report) > 0:
        for position_id, row in report.iterrows():
            closed = row.get("ts_closed")
            is_closed = closed is not None and not (
                isinstance(closed, float) and math.isnan(closed)
            )
            closed_ns = int(closed.value) if is_closed and hasattr(closed, "value") else 0
            pnl = _money_amount(row["realized_pnl"])
            commissions = row.get("commissions")
            rows["position_id"].append(str(position_id))
            rows["entry"].append(str(row["entry"]))
            rows["opened"].append(int(row["ts_opened"].value))
            rows["closed"].append(closed_ns)
            rows["peak_quantity"].append(str(row["peak_qty"]))
            rows["average_open"].append(str(row["avg_px_open"]))
            rows["average_close"].append(str(row["avg_px_close"]))
            rows["realized_pnl"].append(pnl)
            rows["commissions"].append(
                ",".join(str(c) for c in commissions) if isinstance(commissions, list) else ""
            )
            rows["realized_return"].append(float(row["realized_return"]))
    return pa.table(
        {
            "position_id": pa.array(rows["position_id"], pa.string()),
            "entry": pa.array(rows["entry"], pa.string()),
            "opened": pa.array(rows["opened"], pa.int64()),
            "closed": pa.array(rows["closed"], pa.int64()),
            "peak_quantity": pa.array(rows["peak_quantity"], pa.string()),
            "average_open": pa.array(rows["average_open"], pa.string()),
            "average_close": pa.array(rows["average_close"], pa.string()),
            "realized_pnl": pa.array(rows["realized_pnl"], pa.string()),
            "commissions": pa.array(rows["commissions"], pa.string()),
            "realized_return": pa.array(rows["realized_return"], pa.float64()),
        }
    )


def _account_table(report: Any) -> pa.Table:
    times: list[int] = []
    currency: list[str] = []
    total: list[str] = []
    free: list[str] = []
    locked: list[str] = []
    if report is not None and len(report) > 0:
        for when, row in report.iterrows():
            times.append(int(when.value))
            currency.append(str(row["currency"]))
            total.append(str(row["total"]))
            free.append(str(row["free"]))
            locked.append(str(row["locked"]))
    return pa.table(
        {
            "time": pa.array(times, pa.int64()),
            "currency": pa.array(currency, pa.string()),
            "total": pa.array(total, pa.string()),
            "free": pa.array(free, pa.string()),
            "locked": pa.array(locked, pa.string()),
        }
    )


class ResultFiles:
    """Read access to one finished run's result files (Parquet read memory-mapped)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def exists(self) -> bool:
        """Tell whether the run's results were written (only SUCCEEDED runs have them)."""
        return (self.directory / MANIFEST).is_file()

    def manifest(self) -> dict[str, Any]:
        """Return manifest.json: instrument, currencies, account type, interval, rows, stats."""
        loaded: dict[str, Any] = json.loads((self.directory / MANIFEST).read_text())
        return loaded

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """Return one result file (e.g. "candles.parquet"), optionally only some columns."""
        if name not in RESULT_FILES:
            raise ValueError(f"unknown result file {name!r}; one of {RESULT_FILES}")
        return pq.read_table(self.directory / name, columns=columns, memory_map=True)

    def parquet(self, name: str) -> pq.ParquetFile:
        """Return one result file opened for row-group reads (large runs, windows)."""
        if name not in RESULT_FILES:
            raise ValueError(f"unknown result file {name!r}; one of {RESULT_FILES}")
        return pq.ParquetFile(self.directory / name, memory_map=True)
