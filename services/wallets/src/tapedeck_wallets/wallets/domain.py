"""Wallets and their balances as plain data, and the rules a wallet's balances follow."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tapedeck_common import money
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_wallets.exchange.domain import ExchangeAccount

SUPPORTED_EXCHANGES = ("coinbase",)
ASSET_CODE = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,31}")
# A name of an environment variable or a secrets-file key: never the secret itself.
CREDENTIALS_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset's holding: what is available and what is on hold; the total is their sum."""

    asset: str
    available: Decimal
    hold: Decimal
    update_time: datetime | None = None

    @property
    def total(self) -> Decimal:
        """Return available plus hold, exactly."""
        return money.add(self.available, self.hold)

    @classmethod
    def stated(
        cls, *, asset: str, available: Decimal, hold: Decimal, total: Decimal | None, field: str
    ) -> Balance:
        """Return a balance as a caller states it: a known asset code; a total must add up."""
        if not ASSET_CODE.fullmatch(asset):
            raise InvalidArgument(
                [FieldViolation(f"{field}.asset", "must be an upper-case asset code such as BTC")]
            )
        balance = cls(asset=asset, available=available, hold=hold)
        if total is not None and total != balance.total:
            raise InvalidArgument(
                [FieldViolation(f"{field}.total", "must equal available + hold (or be omitted)")]
            )
        return balance


def each_asset_once(balances: Sequence[Balance], *, field: str) -> tuple[Balance, ...]:
    """Return the balances of one wallet, refusing an asset listed twice."""
    seen: set[str] = set()
    for index, balance in enumerate(balances):
        if balance.asset in seen:
            raise InvalidArgument([FieldViolation(f"{field}[{index}].asset", "is listed twice")])
        seen.add(balance.asset)
    return tuple(balances)


def balances_after(
    current: Sequence[Balance], given: Sequence[Balance], *, replace: bool, now: datetime
) -> tuple[Balance, ...]:
    """Return a wallet's balances, by asset, once `given` are set at `now`.

    Each asset given takes the given amounts and `now` as its update time; an asset not given
    keeps its balance, or is dropped when `replace`.
    """
    updated = {
        b.asset: Balance(asset=b.asset, available=b.available, hold=b.hold, update_time=now)
        for b in given
    }
    kept = [] if replace else [b for b in current if b.asset not in updated]
    return tuple(sorted([*kept, *updated.values()], key=lambda b: b.asset))


@dataclass(frozen=True, slots=True)
class NewWallet:
    """A wallet to create."""

    display_name: str
    exchange: str
    account_ref: str
    credentials_ref: str
    balances: tuple[Balance, ...] = ()

    @classmethod
    def stated(
        cls,
        *,
        display_name: str,
        exchange: str,
        account_ref: str,
        credentials_ref: str,
        balances: tuple[Balance, ...],
        field: str,
    ) -> NewWallet:
        """Return a wallet as a caller states it: on a supported exchange, its key named only."""
        if exchange not in SUPPORTED_EXCHANGES:
            raise InvalidArgument(
                [
                    FieldViolation(
                        f"{field}.exchange", f"must be one of {', '.join(SUPPORTED_EXCHANGES)}"
                    )
                ]
            )
        if not CREDENTIALS_REF.fullmatch(credentials_ref):
            raise InvalidArgument(
                [
                    FieldViolation(
                        f"{field}.credentials_ref",
                        "must name an environment variable or secrets-file key "
                        "(letters, digits, underscore)",
                    )
                ]
            )
        return cls(
            display_name=display_name,
            exchange=exchange,
            account_ref=account_ref,
            credentials_ref=credentials_ref,
            balances=balances,
        )


@dataclass(frozen=True, slots=True)
class Wallet:
    """A stored wallet with its balances, ordered by asset."""

    id: str
    display_name: str
    exchange: str
    account_ref: str
    credentials_ref: str
    balances: tuple[Balance, ...]
    create_time: datetime
    update_time: datetime


# A balance as a page lists it: (asset, total, available, hold, update time in microseconds
# since the epoch), amounts already in `decimal_text` form, so a 1,000-wallet page never
# builds or formats a Decimal (nor a datetime per balance).
ListedBalance = tuple[str, str, str, str, int]


@dataclass(frozen=True, slots=True)
class ListedWallet:
    """A stored wallet as `ListWallets` returns it: balances by asset, amounts as text."""

    id: str
    display_name: str
    exchange: str
    account_ref: str
    credentials_ref: str
    balances: tuple[ListedBalance, ...]
    # Microseconds since the Unix epoch, as the page hands them over.
    create_micros: int
    update_micros: int


@dataclass(frozen=True, slots=True)
class WalletAccount:
    """What a reconciliation needs of a wallet before it compares: its name and account."""

    id: str
    display_name: str
    account: ExchangeAccount
