"""Proto messages <-> domain objects; every request field is validated here, naming its path."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from google.protobuf import struct_pb2

from tapedeck.live.v1 import live_pb2
from tapedeck_common.enums import EnumMapping
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import (
    decimal_string,
    nanos_to_timestamp,
    resource_id,
    time_range_nanos,
    timestamp_nanos,
)
from tapedeck_live.domain import (
    MAX_APPEND_BATCH,
    MAX_PAYLOAD_BYTES,
    BlockReason,
    Decision,
    EventFilter,
    EventType,
    NewEvent,
    Order,
    Side,
    StoredEvent,
)

_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
_MAX_LENGTHS = {"run_id": 128, "symbol": 64, "reason": 128}
_MAX_VIOLATIONS = 50
# A message stays well under the server's 32 MiB limit however large the payloads are.
MAX_MESSAGE_EVENT_BYTES = 4 * 1024 * 1024

EVENT_TYPES = EnumMapping(
    live_pb2.EventType.DESCRIPTOR,
    {
        live_pb2.EVENT_TYPE_ORDER_FILLED: EventType.ORDER_FILLED,
        live_pb2.EVENT_TYPE_TRADE_BLOCKED: EventType.TRADE_BLOCKED,
        live_pb2.EVENT_TYPE_RECONCILIATION_MISMATCH: EventType.RECONCILIATION_MISMATCH,
        live_pb2.EVENT_TYPE_RUN_STARTED: EventType.RUN_STARTED,
        live_pb2.EVENT_TYPE_RUN_FINISHED: EventType.RUN_FINISHED,
        live_pb2.EVENT_TYPE_RUN_FAILED: EventType.RUN_FAILED,
        live_pb2.EVENT_TYPE_POSITION_OPENED: EventType.POSITION_OPENED,
        live_pb2.EVENT_TYPE_POSITION_CHANGED: EventType.POSITION_CHANGED,
        live_pb2.EVENT_TYPE_POSITION_CLOSED: EventType.POSITION_CLOSED,
        live_pb2.EVENT_TYPE_ACCOUNT_STATE: EventType.ACCOUNT_STATE,
        live_pb2.EVENT_TYPE_ORDER_UNGATED: EventType.ORDER_UNGATED,
    },
)
BLOCK_REASONS = EnumMapping(
    live_pb2.BlockReason.DESCRIPTOR,
    {
        live_pb2.BLOCK_REASON_INSUFFICIENT_FUNDS: BlockReason.INSUFFICIENT_FUNDS,
        live_pb2.BLOCK_REASON_MAX_NOTIONAL: BlockReason.MAX_NOTIONAL,
        live_pb2.BLOCK_REASON_STALE_BALANCE: BlockReason.STALE_BALANCE,
        live_pb2.BLOCK_REASON_UNKNOWN_WALLET: BlockReason.UNKNOWN_WALLET,
    },
)
SIDES = EnumMapping(
    live_pb2.Side.DESCRIPTOR, {live_pb2.SIDE_BUY: Side.BUY, live_pb2.SIDE_SELL: Side.SELL}
)


def new_events(events: Sequence[live_pb2.Event]) -> list[NewEvent]:
    """Validate a batch to append; any bad event refuses the whole batch, naming each problem."""
    if not events:
        raise InvalidArgument([FieldViolation("events", "must hold at least one event")])
    if len(events) > MAX_APPEND_BATCH:
        raise InvalidArgument(
            [FieldViolation("events", f"holds {len(events)} events; at most {MAX_APPEND_BATCH}")]
        )
    violations: list[FieldViolation] = []
    parsed: list[NewEvent] = []
    for index, event in enumerate(events):
        result = _parse_event(event, f"events[{index}]")
        if isinstance(result, NewEvent):
            parsed.append(result)
            continue
        violations.extend(result)
        if len(violations) >= _MAX_VIOLATIONS:
            break
    if violations:
        raise InvalidArgument(violations[:_MAX_VIOLATIONS])
    return parsed


def _parse_event(event: live_pb2.Event, path: str) -> NewEvent | list[FieldViolation]:
    found: list[FieldViolation] = []
    if not _EVENT_ID.fullmatch(event.event_id):
        found.append(
            FieldViolation(
                f"{path}.event_id", "must be 1-128 printable ASCII characters, no spaces"
            )
        )
    event_type: EventType | None = None
    try:
        event_type = EVENT_TYPES.from_proto(event.type, field=f"{path}.type")
    except InvalidArgument as error:
        found.extend(error.violations)
    if event_type is EventType.TRADE_BLOCKED and event.reason == "":
        found.append(FieldViolation(f"{path}.reason", "is required for a trade_blocked event"))
    for field, limit in _MAX_LENGTHS.items():
        if len(getattr(event, field)) > limit:
            found.append(FieldViolation(f"{path}.{field}", f"is longer than {limit} characters"))
    ts_ns = 0
    if not event.HasField("time"):
        found.append(FieldViolation(f"{path}.time", "is required"))
    else:
        try:
            ts_ns = timestamp_nanos(event.time, field=f"{path}.time")
        except InvalidArgument as error:
            found.extend(error.violations)
    if event.sequence != 0:
        found.append(FieldViolation(f"{path}.sequence", "is assigned by the store; leave it 0"))
    payload = ""
    try:
        payload = payload_json(event.payload)
    except ValueError:
        found.append(
            FieldViolation(f"{path}.payload", "numbers must be finite (no NaN or Infinity)")
        )
    else:
        size = len(payload.encode())
        if size > MAX_PAYLOAD_BYTES:
            found.append(
                FieldViolation(
                    f"{path}.payload", f"is {size} bytes as JSON; at most {MAX_PAYLOAD_BYTES}"
                )
            )
    if found or event_type is None:
        return found
    return NewEvent(
        event_id=event.event_id,
        type=event_type,
        run_id=event.run_id,
        symbol=event.symbol,
        reason=event.reason,
        ts_ns=ts_ns,
        payload_json=payload,
    )


def payload_json(payload: struct_pb2.Struct) -> str:
    """Return a Struct as compact JSON; ValueError for NaN or infinite numbers (JSON has none)."""
    if not payload.fields:
        return "{}"
    return json.dumps(_struct(payload), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# json_format.MessageToDict is generic and about twice as slow; appends convert every payload.
def _struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: _value(value) for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None


def event_filter(message: live_pb2.EventFilter, *, field: str = "filter") -> EventFilter:
    """Validate a filter; empty strings mean "any"."""
    violations: list[FieldViolation] = []
    types: list[EventType] = []
    for index, value in enumerate(message.types):
        try:
            types.append(EVENT_TYPES.from_proto(value, field=f"{field}.types[{index}]"))
        except InvalidArgument as error:
            violations.extend(error.violations)
    for name, limit in _MAX_LENGTHS.items():
        if len(getattr(message, name)) > limit:
            violations.append(
                FieldViolation(f"{field}.{name}", f"is longer than {limit} characters")
            )
    start: int | None = None
    end: int | None = None
    try:
        start, end = time_range_nanos(message.time_range, field=f"{field}.time_range")
    except InvalidArgument as error:
        violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return EventFilter(
        types=tuple(sorted(set(types))),
        run_id=message.run_id or None,
        reason=message.reason or None,
        symbol=message.symbol or None,
        start_ns=start,
        end_ns=end,
    )


def event_message(event: StoredEvent) -> live_pb2.Event:
    """Return the proto of a stored event."""
    message = live_pb2.Event(
        event_id=event.event_id,
        type=EVENT_TYPES.to_proto(event.type),
        run_id=event.run_id,
        symbol=event.symbol,
        reason=event.reason,
        time=nanos_to_timestamp(event.ts_ns),
        sequence=event.sequence,
    )
    message.payload.update(event.payload)
    return message


@dataclass(frozen=True)
class EncodedChunk:
    """Events in wire form as the `events` field of a response, and the sequence of the last."""

    events: bytes
    last_sequence: int


class EncodedEvents:
    """Each stored event's wire form, encoded once and reused by every response that sends it.

    Stored events never change, so a sequence keeps its bytes; the newest `max_events` encoded
    are kept (pages and the tail send recent events, and every subscriber sends the same ones).
    The bytes are an `events = 1` entry: ListEventsResponse, ListBlocksResponse and
    SubscribeEventsResponse all number their repeated Event field 1, so concatenated entries
    parse as one response's events (protobuf appends repeated fields across concatenated bytes).
    """

    def __init__(self, *, max_events: int) -> None:
        self._max_events = max_events
        self._encoded: dict[int, bytes] = {}

    def encoded(self, event: StoredEvent) -> bytes:
        """Return the event as an `events = 1` entry of a response."""
        encoded = self._encoded.get(event.sequence)
        if encoded is None:
            encoded = live_pb2.ListEventsResponse(events=[event_message(event)]).SerializeToString()
            self._encoded[event.sequence] = encoded
            if len(self._encoded) > self._max_events:
                # Dicts keep insertion order: the entry encoded longest ago goes.
                del self._encoded[next(iter(self._encoded))]
        return encoded

    def chunks(self, events: Sequence[StoredEvent]) -> Iterator[EncodedChunk]:
        """Group events into chunks of at most MAX_MESSAGE_EVENT_BYTES (at least one event each)."""
        parts: list[bytes] = []
        size = 0
        for index, event in enumerate(events):
            encoded = self.encoded(event)
            if parts and size + len(encoded) > MAX_MESSAGE_EVENT_BYTES:
                yield EncodedChunk(b"".join(parts), events[index - 1].sequence)
                parts, size = [], 0
            parts.append(encoded)
            size += len(encoded)
        if parts:
            yield EncodedChunk(b"".join(parts), events[-1].sequence)


def order(request: live_pb2.CheckOrderRequest) -> Order:
    """Validate a CheckOrder request."""
    violations: list[FieldViolation] = []
    wallet_id = ""
    try:
        wallet_id = resource_id(request.wallet, collection="wallets", field="wallet")
    except InvalidArgument as error:
        violations.extend(error.violations)
    for name in ("symbol", "base_asset", "quote_asset"):
        value = getattr(request, name)
        if value == "":
            violations.append(FieldViolation(name, "is required"))
        elif len(value) > 64:
            violations.append(FieldViolation(name, "is longer than 64 characters"))
    if request.base_asset and request.base_asset == request.quote_asset:
        violations.append(FieldViolation("quote_asset", "must differ from base_asset"))
    side: Side | None = None
    try:
        side = SIDES.from_proto(request.side, field="side")
    except InvalidArgument as error:
        violations.extend(error.violations)
    amounts: dict[str, Decimal] = {}
    for name in ("quantity", "price"):
        try:
            amounts[name] = decimal_string(getattr(request, name), field=name, allow_zero=False)
        except InvalidArgument as error:
            violations.extend(error.violations)
    if len(request.run_id) > 128:
        violations.append(FieldViolation("run_id", "is longer than 128 characters"))
    if len(request.client_order_id) > 128:
        violations.append(FieldViolation("client_order_id", "is longer than 128 characters"))
    if violations:
        raise InvalidArgument(violations)
    assert side is not None
    return Order(
        wallet_id=wallet_id,
        symbol=request.symbol,
        base_asset=request.base_asset,
        quote_asset=request.quote_asset,
        side=side,
        quantity=amounts["quantity"],
        price=amounts["price"],
        run_id=request.run_id,
        client_order_id=request.client_order_id,
    )


def check_order_response(
    decision: Decision, event: StoredEvent | None
) -> live_pb2.CheckOrderResponse:
    """Return the proto of the gate's decision."""
    response = live_pb2.CheckOrderResponse(
        allowed=decision.allowed,
        reason=(
            live_pb2.BLOCK_REASON_UNSPECIFIED
            if decision.reason is None
            else BLOCK_REASONS.to_proto(decision.reason)
        ),
        message=decision.message,
        available="" if decision.available is None else str(decision.available),
        required="" if decision.required is None else str(decision.required),
    )
    if event is not None:
        response.event.CopyFrom(event_message(event))
    return response
