"""The live-event service's domain: events, filters, and the pre-trade gate's rules (pure)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from tapedeck_common import money

MAX_APPEND_BATCH = 10_000
MAX_PAYLOAD_BYTES = 64 * 1024


class EventType(StrEnum):
    """The kinds of event the store accepts, spelled as stored."""

    ORDER_FILLED = "order_filled"
    TRADE_BLOCKED = "trade_blocked"
    RECONCILIATION_MISMATCH = "reconciliation_mismatch"
    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    RUN_FAILED = "run_failed"
    POSITION_OPENED = "position_opened"
    POSITION_CHANGED = "position_changed"
    POSITION_CLOSED = "position_closed"
    ACCOUNT_STATE = "account_state"
    ORDER_UNGATED = "order_ungated"


@dataclass(frozen=True)
class NewEvent:
    """An event to append, validated; the payload is already serialized JSON."""

    event_id: str
    type: EventType
    run_id: str
    symbol: str
    reason: str
    ts_ns: int
    payload_json: str


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored, with its sequence."""

    sequence: int
    event_id: str
    type: EventType
    run_id: str
    symbol: str
    reason: str
    ts_ns: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class AppendResult:
    """What one append did: counts and each request event's sequence, in request order."""

    appended: int
    duplicates: int
    sequences: list[int]


@dataclass(frozen=True)
class EventFilter:
    """Which events a list or subscription wants; None and empty mean "any"."""

    types: tuple[EventType, ...] = ()
    run_id: str | None = None
    reason: str | None = None
    symbol: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None

    def fingerprint(self) -> str:
        """Return a canonical text of the filter, the key page tokens are bound to."""
        fields = {
            "types": sorted(self.types),
            "run_id": self.run_id,
            "reason": self.reason,
            "symbol": self.symbol,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    def matches(self, event: StoredEvent) -> bool:
        """Return whether a stored event passes the filter (the repository's conditions, in memory)."""
        return (
            (not self.types or event.type in self.types)
            and (self.run_id is None or event.run_id == self.run_id)
            and (self.reason is None or event.reason == self.reason)
            and (self.symbol is None or event.symbol == self.symbol)
            and (self.start_ns is None or event.ts_ns >= self.start_ns)
            and (self.end_ns is None or event.ts_ns < self.end_ns)
        )


@dataclass(frozen=True)
class ReasonCount:
    """How many blocks matching a filter had one reason."""

    reason: str
    count: int


# The pre-trade gate.


class BlockReason(StrEnum):
    """Why the gate refused an order, spelled as recorded on the trade_blocked event."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    MAX_NOTIONAL = "max_notional"
    STALE_BALANCE = "stale_balance"
    UNKNOWN_WALLET = "unknown_wallet"


class Side(Enum):
    """The side of an order."""

    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True)
class Order:
    """An order about to be sent, as the gate sees it."""

    wallet_id: str
    symbol: str
    base_asset: str
    quote_asset: str
    side: Side
    quantity: Decimal
    price: Decimal
    run_id: str
    client_order_id: str

    @property
    def notional(self) -> Decimal:
        """Return quantity x price, in the quote asset."""
        return money.multiply(self.quantity, self.price)

    @property
    def spend_asset(self) -> str:
        """Return the asset the order spends: the quote asset to buy, the base asset to sell."""
        return self.quote_asset if self.side is Side.BUY else self.base_asset

    @property
    def required(self) -> Decimal:
        """Return how much of the spend asset the order needs."""
        return self.notional if self.side is Side.BUY else self.quantity

    def block_event_id(self) -> str:
        """Return the id a refusal is recorded under: one record per client order, however retried."""
        key = f"{self.wallet_id}\x00{self.run_id}\x00{self.client_order_id}"
        return "gate-" + hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class WalletBalance:
    """One asset of a wallet as the wallet service reports it."""

    asset: str
    available: Decimal
    update_time: datetime | None


@dataclass(frozen=True)
class GateLimits:
    """The gate's limits, from settings."""

    max_notional: Decimal
    max_balance_age: timedelta


@dataclass(frozen=True)
class Decision:
    """The gate's answer: allowed, or the reason and a human explanation."""

    reason: BlockReason | None
    message: str
    available: Decimal | None = None
    required: Decimal | None = None

    @property
    def allowed(self) -> bool:
        """Return True when the order may be sent."""
        return self.reason is None


def check_notional(order: Order, limits: GateLimits) -> Decision | None:
    """Refuse an order larger than the notional limit; needs no wallet, so it is asked first."""
    if order.notional > limits.max_notional:
        return Decision(
            reason=BlockReason.MAX_NOTIONAL,
            message=(
                f"notional {order.notional} {order.quote_asset} exceeds the limit "
                f"{limits.max_notional}"
            ),
        )
    return None


def decide(
    order: Order,
    balances: dict[str, WalletBalance] | None,
    *,
    limits: GateLimits,
    now: datetime,
) -> Decision:
    """Apply the gate's rules to an order and its wallet's balances (None: no such wallet)."""
    notional = check_notional(order, limits)
    if notional is not None:
        return notional
    if balances is None:
        return Decision(
            reason=BlockReason.UNKNOWN_WALLET, message=f"wallet wallets/{order.wallet_id} not found"
        )
    asset = order.spend_asset
    required = order.required
    balance = balances.get(asset)
    if balance is None:
        return Decision(
            reason=BlockReason.INSUFFICIENT_FUNDS,
            message=f"the wallet holds no {asset}; the order needs {required}",
            available=Decimal(0),
            required=required,
        )
    # A balance we cannot date, or one older than the limit, cannot vouch for the order.
    if balance.update_time is None or now - balance.update_time > limits.max_balance_age:
        age = "unknown" if balance.update_time is None else str(now - balance.update_time)
        return Decision(
            reason=BlockReason.STALE_BALANCE,
            message=(f"the {asset} balance is {age} old; the limit is {limits.max_balance_age}"),
            available=balance.available,
            required=required,
        )
    if balance.available < required:
        return Decision(
            reason=BlockReason.INSUFFICIENT_FUNDS,
            message=f"available {balance.available} {asset} does not cover {required} {asset}",
            available=balance.available,
            required=required,
        )
    return Decision(
        reason=None,
        message="allowed",
        available=balance.available,
        required=required,
    )
