"""NautilusTrader's events as Tapedeck live events: pure conversions, run on the trading loop.

Event ids derive from NautilusTrader's own ids, so the same fact always gets the same id and a
resend is a duplicate at the live service, never a second event:
- a fill: trader, strategy, client order id and the venue's trade id;
- a denial or rejection: trader, strategy and client order id (an order ends once);
- a position event: trader, strategy, position id and the event's id;
- an account state: trader, account id and the event's id.
Amounts are decimal strings (exact), as are nanosecond times in payloads (a JSON number is a
double: it cannot hold one exactly).
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Any

from google.protobuf import timestamp_pb2

from tapedeck_nautilus.contract import live_pb2
from tapedeck_nautilus.queue import QueuedEvent
from tapedeck_nautilus.session import Session

MAX_REASON_LENGTH = 128  # the live service's limit on reason
MAX_SYMBOL_LENGTH = 64  # and on symbol
# NautilusTrader's risk engine and venues start many reasons with a code, e.g.
# "NOTIONAL_EXCEEDS_FREE_BALANCE: free=..." or "POST_ONLY LIMIT BUY order ... would have been a TAKER".
_CODE = re.compile(r"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?=[:\s]|$)")
DENIED = "ORDER_DENIED"
"""The reason of a denial whose text starts with no code; the text is in the payload."""
REJECTED = "ORDER_REJECTED"
"""The reason of a rejection whose text starts with no code."""


def event_id(kind: str, *ids: object) -> str:
    """Return the live event id of a fact named by NautilusTrader's ids (printable, 48 chars)."""
    key = "\x1f".join(str(part) for part in ids).encode()
    return f"nt:{kind}:{hashlib.blake2b(key, digest_size=20).hexdigest()}"


def reason_code(text: str, *, default: str) -> str:
    """Return the code a NautilusTrader reason text starts with, or `default`."""
    found = _CODE.match(text)
    return found.group(1)[:MAX_REASON_LENGTH] if found else default


def _decimal(value: Any) -> str:
    # Price and Quantity print exactly at their precision, Money's amount likewise; doubles
    # (average prices, returns) print their shortest round-tripping form.
    if value is None:
        return ""
    if isinstance(value, float):
        return str(Decimal(repr(value)))
    if hasattr(value, "currency"):
        return str(value.as_decimal())
    return str(value)


def _money(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    return {"amount": str(value.as_decimal()), "currency": value.currency.code}


def _name(enum_value: Any) -> str:
    return str(getattr(enum_value, "name", enum_value))


def _queued(
    kind: int,
    *,
    id_: str,
    session: Session,
    symbol: str,
    reason: str,
    ts_ns: int,
    payload: dict[str, Any],
) -> QueuedEvent:
    # Serialized here, on the trading loop (about 12 us), so the drainer thread only frames
    # bytes: a thread building protos would hold the GIL for milliseconds at a time and stall
    # the trading loop for up to the interpreter's 5 ms switch interval.
    message = live_pb2.Event(
        event_id=id_,
        type=kind,  # type: ignore[arg-type]  # an EventType value
        run_id=session.run_id,
        symbol=symbol[:MAX_SYMBOL_LENGTH],
        reason=reason,
        time=timestamp_pb2.Timestamp(seconds=ts_ns // 1_000_000_000, nanos=ts_ns % 1_000_000_000),
    )
    message.payload.update(payload)
    return QueuedEvent(event_id=id_, data=request_field(message.SerializeToString()))


def request_field(event: bytes) -> bytes:
    """Return a serialized Event framed as one `events` entry of an AppendEventsRequest.

    Field 1, length-delimited: tag 0x0A, the length as a varint, the bytes. The drainer then
    joins entries into a request without touching them.
    """
    length = len(event)
    prefix = bytearray(b"\x0a")
    while length > 0x7F:
        prefix.append((length & 0x7F) | 0x80)
        length >>= 7
    prefix.append(length)
    return bytes(prefix) + event


def _order_facts(order: Any) -> dict[str, Any]:
    if order is None:
        return {}
    facts: dict[str, Any] = {
        "side": _name(order.side),
        "order_type": _name(order.order_type),
        "quantity": _decimal(order.quantity),
    }
    if order.has_price:
        facts["price"] = _decimal(order.price)
    if order.has_trigger_price:
        facts["trigger_price"] = _decimal(order.trigger_price)
    return facts


def order_filled(event: Any, session: Session) -> QueuedEvent:
    """Return an `order_filled` event for NautilusTrader's OrderFilled."""
    payload = session.payload() | {
        "strategy_id": str(event.strategy_id),
        "instrument_id": str(event.instrument_id),
        "client_order_id": str(event.client_order_id),
        "venue_order_id": str(event.venue_order_id),
        "trade_id": str(event.trade_id),
        "position_id": "" if event.position_id is None else str(event.position_id),
        "account_id": str(event.account_id),
        "side": _name(event.order_side),
        "order_type": _name(event.order_type),
        "quantity": _decimal(event.last_qty),
        "price": _decimal(event.last_px),
        "currency": event.currency.code,
        "commission": _money(event.commission),
        "liquidity_side": _name(event.liquidity_side),
        "nautilus_event_id": str(event.id),
    }
    return _queued(
        live_pb2.EVENT_TYPE_ORDER_FILLED,
        id_=event_id(
            "fill", session.trader_id, event.strategy_id, event.client_order_id, event.trade_id
        ),
        session=session,
        symbol=str(event.instrument_id),
        reason="",
        ts_ns=event.ts_event,
        payload=payload,
    )


def order_denied(event: Any, session: Session, order: Any) -> QueuedEvent:
    """Return a `trade_blocked` event for NautilusTrader's OrderDenied (risk engine or strategy)."""
    return _refused(event, session, order, kind="denied", default=DENIED, facts={})


def order_rejected(event: Any, session: Session, order: Any) -> QueuedEvent:
    """Return a `trade_blocked` event for NautilusTrader's OrderRejected (refused by the venue)."""
    facts = {
        "account_id": str(event.account_id),
        "due_post_only": bool(getattr(event, "due_post_only", False)),
    }
    return _refused(event, session, order, kind="rejected", default=REJECTED, facts=facts)


def _refused(
    event: Any, session: Session, order: Any, *, kind: str, default: str, facts: dict[str, Any]
) -> QueuedEvent:
    payload = (
        session.payload()
        | {
            "source": "nautilus_trader",
            "kind": kind,
            "message": event.reason,
            "strategy_id": str(event.strategy_id),
            "instrument_id": str(event.instrument_id),
            "client_order_id": str(event.client_order_id),
            "nautilus_event_id": str(event.id),
        }
        | facts
        | _order_facts(order)
    )
    return _queued(
        live_pb2.EVENT_TYPE_TRADE_BLOCKED,
        id_=event_id(kind, session.trader_id, event.strategy_id, event.client_order_id),
        session=session,
        symbol=str(event.instrument_id),
        reason=reason_code(event.reason, default=default),
        ts_ns=event.ts_event,
        payload=payload,
    )


def position_event(kind: int, event: Any, session: Session) -> QueuedEvent:
    """Return a position_opened / _changed / _closed event (`kind`) for a PositionEvent."""
    quantity = event.quantity.as_decimal()
    side = _name(event.side)
    payload = session.payload() | {
        "strategy_id": str(event.strategy_id),
        "instrument_id": str(event.instrument_id),
        "position_id": str(event.position_id),
        "account_id": str(event.account_id),
        "opening_order_id": str(event.opening_order_id),
        "closing_order_id": "" if event.closing_order_id is None else str(event.closing_order_id),
        "entry": _name(event.entry),
        "side": side,
        "quantity": str(-quantity if side == "SHORT" else quantity),
        "peak_quantity": _decimal(event.peak_qty),
        "last_quantity": _decimal(event.last_qty),
        "last_price": _decimal(event.last_px),
        "average_open_price": _decimal(event.avg_px_open),
        "average_close_price": _decimal(event.avg_px_close) if event.avg_px_close else "",
        "realized_return": _decimal(event.realized_return),
        "realized_pnl": _money(event.realized_pnl),
        "unrealized_pnl": _money(event.unrealized_pnl),
        "currency": event.currency.code,
        "ts_opened": str(event.ts_opened),
        "ts_closed": str(event.ts_closed or 0),
        "nautilus_event_id": str(event.id),
    }
    return _queued(
        kind,
        id_=event_id("position", session.trader_id, event.strategy_id, event.position_id, event.id),
        session=session,
        symbol=str(event.instrument_id),
        reason="",
        ts_ns=event.ts_event,
        payload=payload,
    )


def account_state(event: Any, session: Session) -> QueuedEvent:
    """Return an `account_state` event for NautilusTrader's AccountState."""
    payload = session.payload() | {
        "account_id": str(event.account_id),
        "account_type": _name(event.account_type),
        "base_currency": "" if event.base_currency is None else event.base_currency.code,
        "is_reported": bool(event.is_reported),
        "balances": [
            {
                "currency": balance.currency.code,
                "total": _decimal(balance.total),
                "locked": _decimal(balance.locked),
                "free": _decimal(balance.free),
            }
            for balance in event.balances
        ],
        "margins": [
            {
                "instrument_id": str(getattr(margin, "instrument_id", "") or ""),
                "currency": margin.currency.code,
                "initial": _decimal(margin.initial),
                "maintenance": _decimal(margin.maintenance),
            }
            for margin in event.margins
        ],
        "nautilus_event_id": str(event.id),
    }
    return _queued(
        live_pb2.EVENT_TYPE_ACCOUNT_STATE,
        id_=event_id("account", session.trader_id, event.account_id, event.id),
        session=session,
        symbol="",
        reason="",
        ts_ns=event.ts_event,
        payload=payload,
    )


def gate_outcome(
    order: Any, session: Session, *, passed: bool, reason: str, message: str, ts_ns: int
) -> QueuedEvent:
    """Return what the gate records when it could not ask Tapedeck about an order.

    Failing closed it denied the order: a `trade_blocked` event. Failing open it sent the
    order unchecked: an `order_ungated` event. One per client order either way.
    """
    payload = (
        session.payload()
        | {
            "source": "tapedeck_gate",
            "message": message,
            "strategy_id": str(order.strategy_id),
            "instrument_id": str(order.instrument_id),
            "client_order_id": str(order.client_order_id),
        }
        | _order_facts(order)
    )
    kind = "ungated" if passed else "gate-blocked"
    return _queued(
        live_pb2.EVENT_TYPE_ORDER_UNGATED if passed else live_pb2.EVENT_TYPE_TRADE_BLOCKED,
        id_=event_id(kind, session.trader_id, order.strategy_id, order.client_order_id),
        session=session,
        symbol=str(order.instrument_id),
        reason=reason,
        ts_ns=ts_ns,
        payload=payload,
    )
