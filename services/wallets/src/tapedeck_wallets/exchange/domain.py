"""What the service reads from an exchange: accounts, their balances, and why a read failed."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tapedeck_common import money


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


class ExchangeFailure(Exception):
    """The exchange could not be read, classified by us rather than by ccxt's exception classes."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.http_status = http_status
