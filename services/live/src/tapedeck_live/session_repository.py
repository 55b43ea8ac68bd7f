"""All SQL of the session summaries: AsyncSession in, domain objects out."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck_live.domain import EventType
from tapedeck_live.models import EventRow, SessionPositionRow, SessionRow, SummaryCursorRow
from tapedeck_live.sessions import (
    PositionSummary,
    SessionSummary,
    SessionTrade,
    SummarizedEvent,
    with_fees,
)

_CURSOR = "sessions"


async def lock_cursor(*, session: AsyncSession) -> int:
    """Return the last sequence summarized, locking it for this transaction (one summarizer at a time)."""
    statement = (
        select(SummaryCursorRow.sequence).where(SummaryCursorRow.name == _CURSOR).with_for_update()
    )
    return int((await session.execute(statement)).scalar_one())


async def summarized_through(*, session: AsyncSession) -> int:
    """Return the last sequence the summaries include."""
    statement = select(SummaryCursorRow.sequence).where(SummaryCursorRow.name == _CURSOR)
    return int((await session.execute(statement)).scalar_one())


async def set_cursor(*, session: AsyncSession, sequence: int) -> None:
    """Record that the summaries include every event up to `sequence`."""
    await session.execute(
        update(SummaryCursorRow).where(SummaryCursorRow.name == _CURSOR).values(sequence=sequence)
    )


async def events_after(*, session: AsyncSession, after: int, limit: int) -> list[SummarizedEvent]:
    """Return up to `limit` events after a sequence, oldest first."""
    statement = (
        select(EventRow.sequence, EventRow.type, EventRow.run_id, EventRow.ts_ns, EventRow.payload)
        .where(EventRow.sequence > after)
        .order_by(EventRow.sequence)
        .limit(limit)
    )
    return [
        SummarizedEvent(
            sequence=row.sequence,
            type=EventType(row.type),
            run_id=row.run_id,
            ts_ns=row.ts_ns,
            payload=row.payload,
        )
        for row in await session.execute(statement)
    ]


async def load_summaries(
    *, session: AsyncSession, run_ids: Collection[str]
) -> dict[str, SessionSummary]:
    """Return the stored summaries of these run_ids (absent ones are not in the result)."""
    if not run_ids:
        return {}
    rows = await session.scalars(select(SessionRow).where(SessionRow.run_id.in_(run_ids)))
    return {row.run_id: _summary(row) for row in rows}


async def load_positions(
    *, session: AsyncSession, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], PositionSummary]:
    """Return the stored positions with these (run_id, position_id) keys."""
    if not keys:
        return {}
    statement = select(SessionPositionRow).where(
        tuple_(SessionPositionRow.run_id, SessionPositionRow.position_id).in_(list(keys))
    )
    rows = await session.scalars(statement)
    return {(row.run_id, row.position_id): _position(row) for row in rows}


async def save(
    *,
    session: AsyncSession,
    summaries: Iterable[SessionSummary],
    positions: Iterable[PositionSummary],
) -> None:
    """Write summaries and positions, new or changed, in one upsert per table."""
    # One statement per table, not a merge per row: a merge is a SELECT and an UPDATE each, and
    # the summarizer runs after every append on the event loop that serves the reads.
    session_rows = [
        {
            "run_id": summary.run_id,
            "trader_id": summary.trader_id,
            "instance_id": summary.instance_id,
            "first_sequence": summary.first_sequence,
            "last_sequence": summary.last_sequence,
            "first_ts_ns": summary.first_ns,
            "last_ts_ns": summary.last_ns,
            "event_count": summary.event_count,
            "type_counts": dict(summary.type_counts),
            "realized_pnl": {c: str(a) for c, a in summary.realized_pnl.items()},
        }
        for summary in summaries
    ]
    position_rows = [
        {
            "run_id": position.run_id,
            "position_id": position.position_id,
            "instrument_id": position.instrument_id,
            "strategy_id": position.strategy_id,
            "quantity": str(position.quantity),
            "average_open_price": position.average_open_price,
            "realized": str(position.realized),
            "closed_realized": str(position.closed_realized),
            "currency": position.currency,
            "is_open": position.is_open,
            "opened_ns": position.opened_ns,
        }
        for position in positions
    ]
    # The rows go as parameters, not VALUES: the statement then compiles once and is cached.
    if session_rows:
        await session.execute(
            _upsert(session, SessionRow, session_rows[0], keys=("run_id",)), session_rows
        )
    if position_rows:
        await session.execute(
            _upsert(session, SessionPositionRow, position_rows[0], keys=("run_id", "position_id")),
            position_rows,
        )


def _upsert(
    session: AsyncSession,
    model: type[SessionRow] | type[SessionPositionRow],
    row: dict[str, Any],
    *,
    keys: tuple[str, ...],
) -> Any:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(model)
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: statement.excluded[name] for name in row if name not in keys},
    )


async def list_sessions(
    *, session: AsyncSession, trader_id: str | None, before: int | None, limit: int
) -> list[SessionSummary]:
    """Return up to `limit` sessions started before a first sequence, most recent first."""
    statement = select(SessionRow).where(SessionRow.instance_id != "")
    if trader_id is not None:
        statement = statement.where(SessionRow.trader_id == trader_id)
    if before is not None:
        statement = statement.where(SessionRow.first_sequence < before)
    statement = statement.order_by(SessionRow.first_sequence.desc()).limit(limit)
    return [_summary(row) for row in await session.scalars(statement)]


async def open_positions(
    *, session: AsyncSession, run_ids: Collection[str]
) -> list[PositionSummary]:
    """Return the open positions of these sessions, oldest opening first."""
    if not run_ids:
        return []
    statement = (
        select(SessionPositionRow)
        .where(SessionPositionRow.run_id.in_(run_ids), SessionPositionRow.is_open)
        .order_by(SessionPositionRow.opened_ns, SessionPositionRow.position_id)
    )
    return [_position(row) for row in await session.scalars(statement)]


async def session_bounds(*, session: AsyncSession, run_id: str) -> tuple[int, int] | None:
    """Return the times (ns) of a session's first and latest summarized events, None if unknown."""
    statement = select(SessionRow.first_ts_ns, SessionRow.last_ts_ns).where(
        SessionRow.run_id == run_id, SessionRow.instance_id != ""
    )
    row = (await session.execute(statement)).first()
    return None if row is None else (row.first_ts_ns, row.last_ts_ns)


async def with_their_fees(
    *, session: AsyncSession, run_id: str, closed: list[SessionTrade]
) -> list[SessionTrade]:
    """Return the round trips with the commissions of their fills (read in one statement)."""
    if not closed:
        return []
    position_ids = sorted({trade.position_id for trade in closed})
    statement = select(EventRow.sequence, EventRow.ts_ns, EventRow.payload).where(
        EventRow.type == EventType.ORDER_FILLED.value,
        EventRow.run_id == run_id,
        EventRow.ts_ns >= min(trade.entry_ns for trade in closed),
        EventRow.ts_ns <= max(trade.exit_ns for trade in closed),
        EventRow.payload["position_id"].as_string().in_(position_ids),
    )
    fills = [
        SummarizedEvent(
            sequence=row.sequence,
            type=EventType.ORDER_FILLED,
            run_id=run_id,
            ts_ns=row.ts_ns,
            payload=row.payload,
        )
        for row in await session.execute(statement)
    ]
    return with_fees(closed, fills)


def _summary(row: SessionRow) -> SessionSummary:
    return SessionSummary(
        run_id=row.run_id,
        trader_id=row.trader_id,
        instance_id=row.instance_id,
        first_sequence=row.first_sequence,
        last_sequence=row.last_sequence,
        first_ns=row.first_ts_ns,
        last_ns=row.last_ts_ns,
        event_count=row.event_count,
        type_counts=dict(row.type_counts),
        realized_pnl={c: Decimal(a) for c, a in row.realized_pnl.items()},
    )


def _position(row: SessionPositionRow) -> PositionSummary:
    return PositionSummary(
        run_id=row.run_id,
        position_id=row.position_id,
        instrument_id=row.instrument_id,
        strategy_id=row.strategy_id,
        quantity=Decimal(row.quantity),
        average_open_price=row.average_open_price,
        realized=Decimal(row.realized),
        closed_realized=Decimal(row.closed_realized),
        currency=row.currency,
        is_open=row.is_open,
        opened_ns=row.opened_ns,
    )
