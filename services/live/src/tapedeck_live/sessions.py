"""Trading sessions: the events of one run_id summarized (pure rules; no SQL, no protobuf).

A session is one start of a trading node. The NautilusTrader bridge gives every event of a
node start the run_id `{trader_id}:{instance_id}` and names both parts in the payload. The
summarizer folds the store's events, in sequence order, into one summary per run_id (counts,
times, realized PnL) and one state per position (the latest position event's). A run_id
becomes a listed session once one of its events names its trader and instance; its events
from before that (a gate refusal can reach the store before the bridge's first event) count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from tapedeck_live.domain import EventType

_POSITION_TYPES = (
    EventType.POSITION_OPENED,
    EventType.POSITION_CHANGED,
    EventType.POSITION_CLOSED,
)
_MAX_ID = 128


@dataclass(frozen=True)
class SummarizedEvent:
    """What the summarizer reads of a stored event."""

    sequence: int
    type: EventType
    run_id: str
    ts_ns: int
    payload: dict[str, Any]


@dataclass
class SessionSummary:
    """One run_id's events, summarized; realized PnL per currency over all its positions."""

    run_id: str
    first_sequence: int
    trader_id: str = ""
    instance_id: str = ""
    last_sequence: int = 0
    first_ns: int = 0
    last_ns: int = 0
    event_count: int = 0
    type_counts: dict[str, int] = field(default_factory=dict)
    realized_pnl: dict[str, Decimal] = field(default_factory=dict)

    @property
    def is_session(self) -> bool:
        """Return True once an event named the session's trader and instance."""
        return self.instance_id != ""


@dataclass
class PositionSummary:
    """A position of a session as its latest position event left it.

    `realized` is the current opening's realized PnL; `closed_realized` sums the openings that
    closed before (NautilusTrader reuses a position id when a netting position reopens).
    """

    run_id: str
    position_id: str
    instrument_id: str = ""
    strategy_id: str = ""
    quantity: Decimal = Decimal(0)
    average_open_price: str = ""
    realized: Decimal = Decimal(0)
    closed_realized: Decimal = Decimal(0)
    currency: str = ""
    is_open: bool = False
    opened_ns: int = 0

    @property
    def total_realized(self) -> Decimal:
        """Return everything this position id realized, closed openings included."""
        return self.closed_realized + self.realized


def position_key(event: SummarizedEvent) -> tuple[str, str] | None:
    """Return (run_id, position_id) of a position event the summarizer can use, else None."""
    if event.type not in _POSITION_TYPES or not event.run_id:
        return None
    position_id = event.payload.get("position_id")
    if not isinstance(position_id, str) or not 0 < len(position_id) <= _MAX_ID:
        return None
    return event.run_id, position_id


def summarize(
    session: SessionSummary, event: SummarizedEvent, position: PositionSummary | None
) -> None:
    """Fold one event (the next by sequence) into its session and, for a position event, its position."""
    if session.event_count == 0:
        session.first_ns = session.last_ns = event.ts_ns
    session.event_count += 1
    session.last_sequence = event.sequence
    session.first_ns = min(session.first_ns, event.ts_ns)
    session.last_ns = max(session.last_ns, event.ts_ns)
    session.type_counts[event.type.value] = session.type_counts.get(event.type.value, 0) + 1
    if not session.is_session:
        trader, instance = event.payload.get("trader_id"), event.payload.get("instance_id")
        if isinstance(trader, str) and isinstance(instance, str) and _identifier(trader, instance):
            session.trader_id, session.instance_id = trader, instance
    if position is not None:
        _position(session, position, event)


def _identifier(*values: str) -> bool:
    return all(0 < len(value) <= _MAX_ID for value in values)


def _position(session: SessionSummary, position: PositionSummary, event: SummarizedEvent) -> None:
    payload = event.payload
    try:
        realized = payload["realized_pnl"]
        amount = Decimal(realized["amount"])
        currency = str(realized["currency"])
        quantity = Decimal(payload["quantity"])
        if not (amount.is_finite() and quantity.is_finite()):
            raise InvalidOperation
    except (KeyError, TypeError, InvalidOperation):
        return  # not a position event the bridge sent: counted, not summarized
    before = position.total_realized
    if position.currency and currency != position.currency:
        return  # a position's PnL has one currency; another is not the same position
    position.currency = currency
    position.instrument_id = str(payload.get("instrument_id", ""))[:_MAX_ID]
    position.strategy_id = str(payload.get("strategy_id", ""))[:_MAX_ID]
    if event.type is EventType.POSITION_CLOSED:
        position.closed_realized += amount
        position.realized = Decimal(0)
        position.quantity = Decimal(0)
        position.is_open = False
    else:
        if not position.is_open:
            position.opened_ns = _int(payload.get("ts_opened"), default=event.ts_ns)
        position.realized = amount
        position.quantity = quantity
        position.average_open_price = str(payload.get("average_open_price", ""))[:64]
        position.is_open = quantity != 0
    change = position.total_realized - before
    session.realized_pnl[currency] = session.realized_pnl.get(currency, Decimal(0)) + change


def _int(value: object, *, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


@dataclass(frozen=True)
class SessionTrade:
    """One round trip of a session's position: what its position_closed event says, and its fees.

    `realized_pnl` is NautilusTrader's, net of commissions; `fees` sums the commissions of the
    position's fills from entry to exit that are in the PnL's currency.
    """

    sequence: int
    position_id: str
    instrument_id: str
    strategy_id: str
    long: bool
    quantity: Decimal
    entry_ns: int
    exit_ns: int
    entry_price: Decimal
    exit_price: Decimal
    realized_pnl: Decimal
    currency: str
    fees: Decimal = Decimal(0)


def closed_trade(event: SummarizedEvent) -> SessionTrade | None:
    """Return the round trip a position_closed event of the bridge ends; None for anything else."""
    payload = event.payload
    if event.type is not EventType.POSITION_CLOSED or payload.get("entry") not in ("BUY", "SELL"):
        return None
    try:
        realized = payload["realized_pnl"]
        trade = SessionTrade(
            sequence=event.sequence,
            position_id=_text(payload["position_id"]),
            instrument_id=_text(payload.get("instrument_id", "")),
            strategy_id=_text(payload.get("strategy_id", "")),
            long=payload["entry"] == "BUY",
            quantity=_finite(payload["peak_quantity"]),
            entry_ns=int(str(payload["ts_opened"])),
            exit_ns=_int(payload.get("ts_closed"), default=event.ts_ns) or event.ts_ns,
            entry_price=_finite(payload["average_open_price"]),
            exit_price=_finite(payload["average_close_price"]),
            realized_pnl=_finite(realized["amount"]),
            currency=_text(realized["currency"]),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation):
        return None  # not a position_closed the bridge sent: listed as an event, not a trade
    return trade if trade.position_id else None


def with_fees(trades: list[SessionTrade], fills: list[SummarizedEvent]) -> list[SessionTrade]:
    """Return the trades with the commissions of their fills added up.

    A fill belongs to the round trip of its position id whose entry-to-exit span holds its time
    (a netting position reuses its id for the next round trip); commissions in another currency
    than the trade's PnL are not added.
    """
    fees: dict[int, Decimal] = {}
    spans: dict[str, list[SessionTrade]] = {}
    for trade in trades:
        spans.setdefault(trade.position_id, []).append(trade)
    for fill in fills:
        commission = fill.payload.get("commission")
        owners = spans.get(str(fill.payload.get("position_id", "")), [])
        owner = next((t for t in owners if t.entry_ns <= fill.ts_ns <= t.exit_ns), None)
        if owner is None or not isinstance(commission, dict):
            continue
        try:
            amount = _finite(commission["amount"])
        except (KeyError, TypeError, InvalidOperation):
            continue
        if commission.get("currency") == owner.currency:
            fees[owner.sequence] = fees.get(owner.sequence, Decimal(0)) + amount
    return [replace(trade, fees=fees.get(trade.sequence, Decimal(0))) for trade in trades]


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_ID:
        raise TypeError
    return value


def _finite(value: object) -> Decimal:
    number = Decimal(str(value))
    if not number.is_finite():
        raise InvalidOperation
    return number
