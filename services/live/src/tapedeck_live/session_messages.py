"""Session summaries <-> protobuf: the ListSessions request checked, its sessions as messages."""

from __future__ import annotations

from collections.abc import Sequence

from tapedeck.common.v1 import common_pb2
from tapedeck.live.v1 import live_pb2
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import nanos_to_timestamp, time_range_nanos
from tapedeck_live.domain import EventFilter, EventType
from tapedeck_live.messages import EVENT_TYPES
from tapedeck_live.sessions import PositionSummary, SessionSummary, SessionTrade

_MAX_TRADER_ID = 128
_MAX_RUN_ID = 128
_MAX_INSTRUMENT_ID = 64


def trader_filter(request: live_pb2.ListSessionsRequest) -> str | None:
    """Return the trader id a ListSessions request filters on (None: all)."""
    if len(request.trader_id) > _MAX_TRADER_ID:
        raise InvalidArgument(
            [FieldViolation("trader_id", f"is longer than {_MAX_TRADER_ID} characters")]
        )
    return request.trader_id or None


def trades_filter(request: live_pb2.ListSessionTradesRequest) -> EventFilter:
    """Return the position_closed events a ListSessionTrades request reads."""
    violations: list[FieldViolation] = []
    if not request.run_id:
        violations.append(FieldViolation("run_id", "is required"))
    for name, limit in (("run_id", _MAX_RUN_ID), ("instrument_id", _MAX_INSTRUMENT_ID)):
        if len(getattr(request, name)) > limit:
            violations.append(FieldViolation(name, f"is longer than {limit} characters"))
    start: int | None = None
    end: int | None = None
    try:
        start, end = time_range_nanos(request.time_range, field="time_range")
    except InvalidArgument as error:
        violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return EventFilter(
        types=(EventType.POSITION_CLOSED,),
        run_id=request.run_id,
        symbol=request.instrument_id or None,
        start_ns=start,
        end_ns=end,
    )


def trade_message(trade: SessionTrade) -> live_pb2.SessionTrade:
    """Return the proto of a session's round trip."""
    return live_pb2.SessionTrade(
        position_id=trade.position_id,
        instrument_id=trade.instrument_id,
        strategy_id=trade.strategy_id,
        side=live_pb2.POSITION_SIDE_LONG if trade.long else live_pb2.POSITION_SIDE_SHORT,
        quantity=str(trade.quantity),
        entry_time=nanos_to_timestamp(trade.entry_ns),
        exit_time=nanos_to_timestamp(trade.exit_ns),
        average_entry_price=str(trade.entry_price),
        average_exit_price=str(trade.exit_price),
        realized_pnl=common_pb2.Money(currency=trade.currency, amount=str(trade.realized_pnl)),
        fees=str(trade.fees),
        sequence=trade.sequence,
    )


def session_message(
    summary: SessionSummary, open_positions: Sequence[PositionSummary]
) -> live_pb2.Session:
    """Return the proto of a session and its open positions."""
    counts = sorted(summary.type_counts.items(), key=lambda item: (-item[1], item[0]))
    return live_pb2.Session(
        run_id=summary.run_id,
        trader_id=summary.trader_id,
        instance_id=summary.instance_id,
        start_time=nanos_to_timestamp(summary.first_ns),
        last_time=nanos_to_timestamp(summary.last_ns),
        event_count=summary.event_count,
        type_counts=[
            live_pb2.EventTypeCount(type=EVENT_TYPES.to_proto(EventType(name)), count=count)
            for name, count in counts
        ],
        open_positions=[_position(position) for position in open_positions],
        realized_pnl=[
            common_pb2.Money(currency=currency, amount=str(amount))
            for currency, amount in sorted(summary.realized_pnl.items())
        ],
    )


def _position(position: PositionSummary) -> live_pb2.SessionPosition:
    return live_pb2.SessionPosition(
        position_id=position.position_id,
        instrument_id=position.instrument_id,
        strategy_id=position.strategy_id,
        quantity=str(position.quantity),
        average_open_price=position.average_open_price,
        realized_pnl=common_pb2.Money(currency=position.currency, amount=str(position.realized)),
        open_time=nanos_to_timestamp(position.opened_ns),
    )
