"""Synthetic finished runs for the playback tests, written with the runs engineer's result writer.

A synthetic run is a price series, a list of fills and an account; `write_results` turns them into
the same files a NautilusTrader run leaves, and a SUCCEEDED row makes it visible to the service.
The brute-force `replay` here is the reference GetPortfolioState is checked against: it walks the
fills one by one and books a flip as a close of the old position then an open of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest.runs import repository
from tapedeck_backtest.runs.domain import (
    AccountKind,
    Fill,
    Run,
    RunSpec,
    RunState,
    final_content_version,
    running_content_version,
)
from tapedeck_backtest.runs.results import (
    PriceSeries,
    RunContext,
    candles_from_prices,
    write_results,
)
from tapedeck_backtest.runs.stats import CALENDAR_DAYS_PER_YEAR, TradeFigures
from tapedeck_common.database import session_factory
from tapedeck_common.runtime import ServiceApp
from tapedeck_common.validation import new_id

MINUTE = 60_000_000_000
T0 = 1_709_251_200_000_000_000  # 2024-03-01T00:00:00Z
INSTRUMENT_ID = "BTCUSDT.BINANCE"


@dataclass(frozen=True)
class SyntheticRun:
    """What a synthetic run was made of."""

    run_id: str
    prices: PriceSeries
    fills: list[Fill]
    account: AccountKind
    balances: tuple[tuple[str, Decimal], ...]
    interval_ns: int


def random_prices(
    *, start_ns: int, count: int, step_ns: int, seed: int, gap_every: int = 0
) -> PriceSeries:
    """Return a random walk of cent prices; every `gap_every`th step skips ahead an hour."""
    rng = np.random.default_rng(seed)
    steps = np.full(count, step_ns, dtype=np.int64)
    if gap_every:
        steps[::gap_every] += 60 * MINUTE
    times = start_ns + np.cumsum(steps) - steps[0]
    cents = 3_000_000 + np.cumsum(rng.integers(-500, 501, count))
    return PriceSeries(
        times=times.astype(np.int64),
        prices=cents / 100.0,
        volumes=rng.integers(1, 2000, count) / 1000.0,
    )


def price_at(prices: PriceSeries, time_ns: int) -> Decimal:
    """Return the last price at or before `time_ns` as an exact decimal (cents)."""
    index = max(int(np.searchsorted(prices.times, time_ns, "right")) - 1, 0)
    return Decimal(repr(float(prices.prices[index])))


def write_run(
    results_root: Path,
    *,
    prices: PriceSeries,
    fills: list[Fill],
    account: AccountKind = AccountKind.MARGIN,
    balances: tuple[tuple[str, Decimal], ...] = (("USDT", Decimal("100000")),),
    interval_ns: int = MINUTE,
    run_id: str | None = None,
) -> SyntheticRun:
    """Write a finished run's result files with the runs writer."""
    run_id = run_id or new_id()
    context = RunContext(
        run_id=run_id,
        instrument_id=INSTRUMENT_ID,
        quote_currency="USDT",
        base_currency="BTC",
        account_type=account,
        starting_balances=balances,
        start_ns=int(prices.times[0]),
        end_ns=int(prices.times[-1]) + interval_ns,
        bar_interval_ns=interval_ns,
        run_seconds=0.1,
        periods_per_year=CALENDAR_DAYS_PER_YEAR,
    )
    write_results(
        directory=str(results_root / run_id),
        context=context,
        prices=prices,
        candles=candles_from_prices(prices, interval_ns=interval_ns),
        fills=sorted(fills, key=lambda f: f.time),
        positions_report=None,
        account_report=None,
        trades=[],
        trade_figures=NO_TRADES,
    )
    return SyntheticRun(
        run_id, prices, sorted(fills, key=lambda f: f.time), account, balances, interval_ns
    )


# A synthetic run has fills but no NautilusTrader positions: no round trips to figure.
NO_TRADES = TradeFigures(
    0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), 0.0
)


def sessions_of(app: ServiceApp) -> async_sessionmaker[AsyncSession]:
    """Return a session factory on the running service's database."""
    return session_factory(app.engine)


async def insert_run(
    sessions: async_sessionmaker[AsyncSession], run_id: str, *, state: RunState
) -> str:
    """Store a run row in `state` (no worker involved) and return its content version."""
    version = (
        final_content_version(run_id, state, "{}")
        if state.is_final
        else running_content_version(state, 0)
    )
    run = Run(
        id=run_id,
        spec=RunSpec(
            dataset_id="synthetic",
            strategy_id="ema_cross",
            parameters={},
            start_ns=T0,
            end_ns=T0 + MINUTE,
            starting_balances=(("USDT", Decimal("100000")),),
            account_type=AccountKind.MARGIN,
        ),
        spec_hash=new_id(),
        state=state,
        create_time=datetime.now(UTC),
        content_version=version,
    )
    async with sessions() as session, session.begin():
        await repository.insert_run(session=session, run=run)
    return version


def fill(
    time_ns: int,
    side: str,
    quantity: str,
    price: str,
    *,
    commission: str = "0",
    currency: str = "USDT",
    number: int = 0,
) -> Fill:
    """Return one fill."""
    return Fill(
        time=time_ns,
        fill_id=f"T-{number}",
        order_id=f"O-{number}",
        position_id="P-1",
        instrument_id=INSTRUMENT_ID,
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        commission=Decimal(commission),
        commission_currency=currency,
    )


@dataclass(frozen=True)
class Replayed:
    """The portfolio a row-by-row replay of fills arrives at."""

    fill_count: int
    position: Decimal
    average_price: Decimal
    realized_pnl: Decimal
    fees: Decimal
    cash: Decimal
    base: Decimal


def replay(
    fills: list[pb.Fill],
    *,
    until_ns: int,
    account: AccountKind,
    balances: dict[str, Decimal],
) -> Replayed:
    """Replay fills at or before `until_ns`; a flip is a close then an open of the remainder."""
    position = average = realized = fees = Decimal(0)
    cash, base = balances.get("USDT", Decimal(0)), balances.get("BTC", Decimal(0))
    count = 0
    for item in fills:
        at = item.time.seconds * 1_000_000_000 + item.time.nanos
        if at > until_ns:
            break
        count += 1
        quantity, price = Decimal(item.quantity), Decimal(item.price)
        commission = Decimal(item.commission)
        signed = quantity if item.side == pb.ORDER_SIDE_BUY else -quantity
        if item.commission_currency == "BTC":
            base -= commission
            fees += commission * price
        else:
            cash -= commission
            fees += commission
        booked = Decimal(0)
        opening = signed
        if position != 0 and (position > 0) != (signed > 0):
            closing = min(abs(signed), abs(position))
            booked = closing * (price - average) * (1 if position > 0 else -1)
            position += closing if position < 0 else -closing
            opening = signed + (closing if signed < 0 else -closing)
            if position == 0:
                average = Decimal(0)
        if opening != 0:
            total = position + opening
            average = (average * abs(position) + price * abs(opening)) / abs(total)
            position = total
        realized += booked
        if account is AccountKind.CASH:
            cash -= signed * price
            base += signed
        else:
            cash += booked
    return Replayed(count, position, average, realized, fees, cash, base)


async def all_fills(stub: object, name: str, *, page_size: int = 7) -> list[pb.Fill]:
    """Page through ListFills and return every fill."""
    found: list[pb.Fill] = []
    token = ""
    while True:
        page = await stub.ListFills(  # type: ignore[attr-defined]
            pb.ListFillsRequest(backtest=name, page_size=page_size, page_token=token)
        )
        found.extend(page.fills)
        token = page.next_page_token
        if not token:
            return found


def ts(nanos: int) -> Timestamp:
    """Return nanoseconds since the epoch as a Timestamp."""
    return Timestamp(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


def time_range(start: int | None, end: int | None) -> common_pb2.TimeRange:
    """Return a TimeRange; None leaves a bound open."""
    window = common_pb2.TimeRange()
    if start is not None:
        window.start_time.CopyFrom(ts(start))
    if end is not None:
        window.end_time.CopyFrom(ts(end))
    return window
