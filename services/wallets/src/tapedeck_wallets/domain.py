"""Wallets, balances and reconciliation reports as plain data, and the comparison rule."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tapedeck_common import money

SUPPORTED_EXCHANGES = ("coinbase",)


def decimal_text(value: Decimal) -> str:
    """Return a decimal as a plain string without exponent or trailing zeros ("1.5", "100")."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def plain_decimal_text(text: str) -> str:
    """Return a plain decimal string (no exponent) as `decimal_text` writes it: "1.50" -> "1.5"."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-", "-0") else text


# A balance as a page lists it: (asset, total, available, hold, update time in microseconds
# since the epoch), amounts already in `decimal_text` form, so a 1,000-wallet page never
# builds or formats a Decimal (nor a datetime per balance).
ListedBalance = tuple[str, str, str, str, int]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(value: datetime) -> int:
    """Return an aware datetime as exact microseconds since the Unix epoch."""
    return (value - _EPOCH) // _MICROSECOND


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
class Balance:
    """One asset's holding; total is available plus hold."""

    asset: str
    total: Decimal
    available: Decimal
    hold: Decimal
    update_time: datetime | None = None


@dataclass(frozen=True)
class NewWallet:
    """A wallet to create."""

    display_name: str
    exchange: str
    account_ref: str
    credentials_ref: str
    balances: tuple[Balance, ...] = ()


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

    @property
    def account_key(self) -> ExchangeAccount:
        """Return the exchange account the wallet reads from."""
        return ExchangeAccount(
            exchange=self.exchange,
            account_ref=self.account_ref,
            credentials_ref=self.credentials_ref,
        )


@dataclass(frozen=True, slots=True)
class WalletAccount:
    """What a reconciliation needs of a wallet before it compares: its name and account."""

    id: str
    display_name: str
    account: ExchangeAccount


@dataclass(frozen=True, slots=True)
class ExchangeAccount:
    """An account on an exchange as reached with one set of credentials; one client each."""

    exchange: str
    account_ref: str
    credentials_ref: str

    def cache_key(self) -> str:
        """Return the key its balances are cached under."""
        return f"{self.exchange}|{self.account_ref}|{self.credentials_ref}"


@dataclass(frozen=True, slots=True)
class ExchangeBalance:
    """One asset as the exchange reports it, exact."""

    asset: str
    available: Decimal
    hold: Decimal

    @property
    def total(self) -> Decimal:
        """Return available plus hold."""
        return money.add(self.available, self.hold)


@dataclass(frozen=True, slots=True)
class ExchangeSnapshot:
    """An account's balances as fetched from the exchange at one instant."""

    balances: Mapping[str, ExchangeBalance]
    fetch_time: datetime
    from_cache: bool = False


class ErrorKind(enum.Enum):
    """Why an exchange could not be read."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    BAD_RESPONSE = "bad_response"
    AUTHENTICATION = "authentication"


class ReconciliationState(enum.Enum):
    """Where a reconciliation job is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Tell whether the job will not change any more."""
        return self in (ReconciliationState.SUCCEEDED, ReconciliationState.FAILED)


class WalletStatus(enum.Enum):
    """The outcome of reconciling one wallet."""

    MATCHED = "matched"
    MISMATCHED = "mismatched"
    EXCHANGE_ERROR = "exchange_error"


@dataclass(frozen=True, slots=True)
class BalanceDiff:
    """One asset's stored and exchange totals."""

    asset: str
    stored_total: Decimal
    exchange_total: Decimal
    difference: Decimal
    beyond_threshold: bool


@dataclass(frozen=True, slots=True)
class WalletResult:
    """The result for one wallet in a reconciliation."""

    wallet_id: str
    display_name: str
    status: WalletStatus
    diffs: tuple[BalanceDiff, ...] = ()
    error_kind: ErrorKind | None = None
    error_message: str = ""
    adopted: bool = False
    fetch_time: datetime | None = None
    from_cache: bool = False
    seq: int = 0


@dataclass(frozen=True)
class ReconciliationRequest:
    """What a caller asked to reconcile."""

    wallet_ids: tuple[str, ...]
    threshold: Decimal
    max_cache_age: float | None
    adopt_exchange_balances: bool


@dataclass(frozen=True)
class Reconciliation:
    """A stored reconciliation report."""

    id: str
    state: ReconciliationState
    wallet_ids: tuple[str, ...]
    threshold: Decimal
    adopt_exchange_balances: bool
    max_cache_age: float | None
    matched_count: int
    mismatched_count: int
    error_count: int
    create_time: datetime
    end_time: datetime | None
    error_message: str
    requested_by: str = ""
    results: tuple[WalletResult, ...] = field(default=())


_ZERO = Decimal(0)


def compare(
    *,
    stored: Mapping[str, Decimal],
    exchange: Mapping[str, ExchangeBalance],
    threshold: Decimal,
) -> tuple[BalanceDiff, ...]:
    """Compare totals asset by asset: every stored asset and every non-zero exchange asset."""
    exchange_totals = {}
    for asset, balance in exchange.items():
        total = balance.total
        if total != 0:
            exchange_totals[asset] = total
    diffs = []
    for asset in sorted(stored.keys() | exchange_totals.keys()):
        ours = stored.get(asset, _ZERO)
        theirs = exchange_totals.get(asset, _ZERO)
        difference = money.subtract(theirs, ours)
        diffs.append(
            BalanceDiff(
                asset=asset,
                stored_total=ours,
                exchange_total=theirs,
                difference=difference,
                beyond_threshold=abs(difference) > threshold,
            )
        )
    return tuple(diffs)


def adopted_balances(exchange: Mapping[str, ExchangeBalance]) -> tuple[Balance, ...]:
    """Return the exchange's non-zero balances as the stored balances to adopt."""
    return tuple(
        Balance(asset=b.asset, total=b.total, available=b.available, hold=b.hold)
        for b in sorted(exchange.values(), key=lambda b: b.asset)
        if b.total != 0
    )
