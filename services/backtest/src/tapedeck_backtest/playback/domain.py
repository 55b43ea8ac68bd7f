"""Playback of finished runs: what a request asks for, the portfolio at an instant, and pages."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tapedeck_backtest.runs.domain import AccountKind, Holdings, equity
from tapedeck_common.errors import FieldViolation, InvalidArgument

_ZERO = Decimal(0)


@dataclass(frozen=True)
class Manifest:
    """What playback needs from a run's `manifest.json`."""

    instrument_id: str
    quote_currency: str
    base_currency: str | None
    account_type: AccountKind
    bar_interval_ns: int
    start_ns: int
    end_ns: int
    starting_balances: tuple[tuple[str, Decimal], ...]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        """Read the fields playback uses from a parsed manifest."""
        return cls(
            instrument_id=str(raw["instrument_id"]),
            quote_currency=str(raw["quote_currency"]),
            base_currency=None if raw.get("base_currency") is None else str(raw["base_currency"]),
            account_type=AccountKind(raw["account_type"]),
            bar_interval_ns=int(raw["bar_interval_ns"]),
            start_ns=int(raw["start_ns"]),
            end_ns=int(raw["end_ns"]),
            starting_balances=tuple((str(c), Decimal(a)) for c, a in raw["starting_balances"]),
        )

    def starting_holdings(self) -> Holdings:
        """Return the portfolio before the first fill."""
        return Holdings.starting(
            self.starting_balances,
            quote_currency=self.quote_currency,
            base_currency=self.base_currency,
        )


@dataclass(frozen=True)
class PositionAt:
    """An open position at an instant."""

    instrument_id: str
    quantity: Decimal
    average_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True)
class PortfolioAt:
    """A run's portfolio at an instant; money in the quote currency."""

    time_ns: int
    cash: list[tuple[str, Decimal]]
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    fill_count: int
    positions: list[PositionAt]


def value_portfolio(
    manifest: Manifest, holdings: Holdings, *, time_ns: int, fill_count: int, mark: Decimal
) -> PortfolioAt:
    """Value holdings at `mark`: unrealized PnL of the open position, equity, balances shown.

    The base currency is shown for a CASH account, and for MARGIN only when it is not zero.
    """
    position = holdings.position
    unrealized = position * (mark - holdings.average_price) if position != 0 else _ZERO
    balances = [(manifest.quote_currency, holdings.cash)]
    if manifest.base_currency is not None and (
        manifest.account_type is AccountKind.CASH or holdings.base_balance != 0
    ):
        balances.append((manifest.base_currency, holdings.base_balance))
    positions = []
    if position != 0:
        positions.append(
            PositionAt(
                instrument_id=manifest.instrument_id,
                quantity=position,
                average_price=holdings.average_price,
                mark_price=mark,
                unrealized_pnl=unrealized,
                realized_pnl=holdings.realized_pnl,
            )
        )
    return PortfolioAt(
        time_ns=time_ns,
        cash=balances,
        equity=equity(
            manifest.account_type,
            cash=holdings.cash,
            base=holdings.base_balance,
            position=position,
            average_price=holdings.average_price,
            mark=mark,
        ),
        realized_pnl=holdings.realized_pnl,
        unrealized_pnl=unrealized,
        fees=holdings.fees,
        fill_count=fill_count,
        positions=positions,
    )


@dataclass(frozen=True)
class CandleQuery:
    """A window of a run's candles, re-aggregated to at most `max_candles` (0: no limit)."""

    run_id: str
    start_ns: int | None
    end_ns: int | None
    max_candles: int
    indicators: tuple[str, ...]  # result columns, in the order asked for
    chunk_size: int


@dataclass(frozen=True)
class EquityQuery:
    """A window of a run's equity curve, every `sample_every`th point, LTTB to `max_points`."""

    run_id: str
    start_ns: int | None
    end_ns: int | None
    sample_every: int
    max_points: int
    chunk_size: int

    def fingerprint(self) -> str:
        """Return what a page token of this query is bound to (not the page size)."""
        return f"{self.run_id}|{self.start_ns}|{self.end_ns}|{self.sample_every}|{self.max_points}"


@dataclass(frozen=True)
class FillQuery:
    """A run's fills at times in [start, end)."""

    run_id: str
    start_ns: int | None
    end_ns: int | None

    def fingerprint(self) -> str:
        """Return what a page token of this query is bound to (not the page size)."""
        return f"{self.run_id}|{self.start_ns}|{self.end_ns}"


@dataclass(frozen=True)
class TradeQuery:
    """A run's trades that exit at times in [start, end), of one side or both (None)."""

    run_id: str
    start_ns: int | None
    end_ns: int | None
    side: str | None  # LONG or SHORT

    def fingerprint(self) -> str:
        """Return what a page token of this query is bound to (not the page size)."""
        return f"{self.run_id}|{self.start_ns}|{self.end_ns}|{self.side}"


@dataclass(frozen=True)
class PagePosition:
    """Where a page of a run's results resumes: the results' content version and an offset."""

    version: str
    offset: int


def resume_offset(after: PagePosition | None, *, version: str) -> int:
    """Return the offset a page starts at; a token for other results of the run is refused."""
    if after is None:
        return 0
    if after.version != version:
        raise InvalidArgument(
            [FieldViolation("page_token", "was issued for other results of this run; start again")]
        )
    return after.offset
