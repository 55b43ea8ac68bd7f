"""Balances summed per asset over every wallet, valued in one quote currency: the pure rules."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tapedeck_common import money
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_wallets.exchange.domain import ExchangeFailure
from tapedeck_wallets.exchange.prices import Quote
from tapedeck_wallets.wallets.domain import ASSET_CODE


@dataclass(frozen=True, slots=True)
class AssetTotal:
    """One asset's stored totals summed over every wallet holding it."""

    asset: str
    total: Decimal
    wallet_count: int


class PriceStatus(enum.Enum):
    """Where an asset's price came from, or why it has none."""

    PRICED = "priced"
    QUOTE = "quote"
    NO_MARKET = "no_market"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class ValuedAsset:
    """An asset's total and, when priced, its price and value in the quote currency."""

    total: AssetTotal
    status: PriceStatus
    price: Decimal | None

    @property
    def value(self) -> Decimal | None:
        """Return total times price, exactly, or None when unpriced."""
        return None if self.price is None else money.multiply(self.total.total, self.price)


@dataclass(frozen=True, slots=True)
class BalanceTotals:
    """Every asset's total valued in one quote currency, and what kept any from a price."""

    quote: str
    assets: tuple[ValuedAsset, ...]
    failure: ExchangeFailure | None
    price_time: datetime | None

    @property
    def total_value(self) -> Decimal:
        """Return the sum of the priced assets' values, exactly."""
        total = Decimal(0)
        for asset in self.assets:
            value = asset.value
            if value is not None:
                total = money.add(total, value)
        return total

    @property
    def unpriced_count(self) -> int:
        """Return how many assets are left unvalued."""
        return sum(1 for asset in self.assets if asset.price is None)


def quote_currency(value: str, *, field: str) -> str:
    """Return a requested quote currency: an upper-case asset code."""
    if value == "":
        raise InvalidArgument([FieldViolation(field, "is required, e.g. USD")])
    if not ASSET_CODE.fullmatch(value):
        raise InvalidArgument(
            [FieldViolation(field, "must be an upper-case asset code such as USD")]
        )
    return value


def product_id(asset: str, quote: str) -> str:
    """Return the exchange product that prices `asset` in `quote`."""
    return f"{asset}-{quote}"


def products_to_price(totals: Sequence[AssetTotal], quote: str) -> list[str]:
    """Return the products whose prices value the totals (the quote itself needs none)."""
    return [product_id(t.asset, quote) for t in totals if t.asset != quote]


def value_totals(
    totals: Sequence[AssetTotal], *, quote: str, quotes: Mapping[str, Quote | ExchangeFailure]
) -> BalanceTotals:
    """Value each total with its product's quote; an unlisted or unreadable price stays unset."""
    valued = []
    failure: ExchangeFailure | None = None
    price_time: datetime | None = None
    for total in totals:
        if total.asset == quote:
            valued.append(ValuedAsset(total, PriceStatus.QUOTE, Decimal(1)))
            continue
        answer = quotes[product_id(total.asset, quote)]
        if isinstance(answer, ExchangeFailure):
            failure = failure or answer
            valued.append(ValuedAsset(total, PriceStatus.UNAVAILABLE, None))
            continue
        if price_time is None or answer.fetch_time < price_time:
            price_time = answer.fetch_time
        status = PriceStatus.NO_MARKET if answer.price is None else PriceStatus.PRICED
        valued.append(ValuedAsset(total, status, answer.price))
    return BalanceTotals(quote=quote, assets=tuple(valued), failure=failure, price_time=price_time)
