"""All SQL of the live-event service: AsyncSession in, domain objects out."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck_live.domain import (
    AppendResult,
    EventFilter,
    EventType,
    NewEvent,
    ReasonCount,
    StoredEvent,
)
from tapedeck_live.models import EventRow

# Other replicas LISTEN here; the payload is empty so notifications of one transaction coalesce.
NOTIFY_CHANNEL = "tapedeck_live_events"
# Appends on PostgreSQL take this transaction lock before drawing sequences, so a sequence
# becomes visible only after every smaller one has committed or rolled back: a reader that has
# seen sequence S never later finds a new event below S (no late commits behind a cursor).
_APPEND_LOCK = zlib.crc32(b"tapedeck-live-append")

_COLUMNS = (
    EventRow.sequence,
    EventRow.event_id,
    EventRow.type,
    EventRow.run_id,
    EventRow.symbol,
    EventRow.reason,
    EventRow.ts_ns,
    EventRow.payload,
)

_PG_APPEND = text(
    """
    INSERT INTO events (event_id, type, run_id, symbol, reason, ts_ns, payload)
    SELECT e.event_id, e.type, e.run_id, e.symbol, e.reason, e.ts_ns, e.payload::jsonb
    FROM unnest(
        CAST(:event_ids AS text[]), CAST(:types AS text[]), CAST(:run_ids AS text[]),
        CAST(:symbols AS text[]), CAST(:reasons AS text[]), CAST(:ts_ns AS bigint[]),
        CAST(:payloads AS text[])
    ) WITH ORDINALITY AS e(event_id, type, run_id, symbol, reason, ts_ns, payload, ord)
    ORDER BY e.ord
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, sequence
    """
)
_PG_SEQUENCES = text(
    "SELECT event_id, sequence FROM events WHERE event_id = ANY(CAST(:event_ids AS text[]))"
)
_SQLITE_APPEND = text(
    """
    INSERT INTO events (event_id, type, run_id, symbol, reason, ts_ns, payload)
    VALUES (:event_id, :type, :run_id, :symbol, :reason, :ts_ns, :payload)
    ON CONFLICT (event_id) DO NOTHING
    """
)
_SQLITE_SEQUENCES = text(
    "SELECT event_id, sequence FROM events "
    "WHERE event_id IN (SELECT value FROM json_each(:event_ids)) ORDER BY sequence"
)


async def append_events(*, session: AsyncSession, events: Sequence[NewEvent]) -> AppendResult:
    """Store the events whose ids are new, in request order, in the session's transaction."""
    first: dict[str, NewEvent] = {}
    for event in events:
        first.setdefault(event.event_id, event)  # a repeat inside the batch is a duplicate too
    unique = list(first.values())
    if session.get_bind().dialect.name == "postgresql":
        sequence_of = await _append_postgres(session, unique)
    else:
        sequence_of = await _append_sqlite(session, unique)
    appended = len(sequence_of.new)
    return AppendResult(
        appended=appended,
        duplicates=len(events) - appended,
        sequences=[sequence_of.all[event.event_id] for event in events],
    )


class _Sequences:
    def __init__(self) -> None:
        self.all: dict[str, int] = {}
        self.new: set[str] = set()


async def _append_postgres(session: AsyncSession, events: list[NewEvent]) -> _Sequences:
    found = _Sequences()
    # One round trip: the lock, and the wake-up other replicas get at commit (delivered only
    # then, so never before the rows are visible; a batch of duplicates wakes them for nothing).
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:key), pg_notify(:channel, '')"),
        {"key": _APPEND_LOCK, "channel": NOTIFY_CHANNEL},
    )
    inserted = await session.execute(
        _PG_APPEND,
        {
            "event_ids": [e.event_id for e in events],
            "types": [e.type.value for e in events],
            "run_ids": [e.run_id for e in events],
            "symbols": [e.symbol for e in events],
            "reasons": [e.reason for e in events],
            "ts_ns": [e.ts_ns for e in events],
            "payloads": [e.payload_json for e in events],
        },
    )
    for event_id, sequence in inserted:
        found.all[event_id] = sequence
        found.new.add(event_id)
    missing = [e.event_id for e in events if e.event_id not in found.all]
    if missing:
        existing = await session.execute(_PG_SEQUENCES, {"event_ids": missing})
        found.all.update({row.event_id: row.sequence for row in existing})
    return found


async def _append_sqlite(session: AsyncSession, events: list[NewEvent]) -> _Sequences:
    found = _Sequences()
    result = await session.execute(
        _SQLITE_APPEND,
        [
            {
                "event_id": e.event_id,
                "type": e.type.value,
                "run_id": e.run_id,
                "symbol": e.symbol,
                "reason": e.reason,
                "ts_ns": e.ts_ns,
                "payload": e.payload_json,
            }
            for e in events
        ],
    )
    appended: int = result.rowcount  # type: ignore[attr-defined]
    rows = (
        await session.execute(
            _SQLITE_SEQUENCES, {"event_ids": json.dumps([e.event_id for e in events])}
        )
    ).all()
    # SQLite writers hold the database lock from their first insert to commit and rowids grow by
    # one, so the rows this statement inserted are exactly the `appended` largest sequences.
    for index, (event_id, sequence) in enumerate(rows):
        found.all[event_id] = sequence
        if index >= len(rows) - appended:
            found.new.add(event_id)
    return found


def _conditions(event_filter: EventFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if len(event_filter.types) == 1:
        conditions.append(EventRow.type == event_filter.types[0].value)
    if event_filter.run_id is not None:
        conditions.append(EventRow.run_id == event_filter.run_id)
    if event_filter.reason is not None:
        conditions.append(EventRow.reason == event_filter.reason)
    if event_filter.symbol is not None:
        conditions.append(EventRow.symbol == event_filter.symbol)
    if event_filter.start_ns is not None:
        conditions.append(EventRow.ts_ns >= event_filter.start_ns)
    if event_filter.end_ns is not None:
        conditions.append(EventRow.ts_ns < event_filter.end_ns)
    return conditions


def _ordered(
    event_filter: EventFilter,
    *,
    cursor: ColumnElement[bool] | None,
    descending: bool,
    limit: int,
) -> Select[Any]:
    # Several types become one ordered, limited branch per type merged by sequence (a Merge
    # Append on PostgreSQL): each branch walks its (type, sequence) index, so a page still reads
    # about `limit` rows instead of sorting every match.
    conditions = _conditions(event_filter)
    if cursor is not None:
        conditions.append(cursor)
    key = EventRow.sequence.desc() if descending else EventRow.sequence.asc()
    if len(event_filter.types) <= 1:
        return select(*_COLUMNS).where(*conditions).order_by(key).limit(limit)
    branches = [
        select(*_COLUMNS)
        .where(EventRow.type == event_type.value, *conditions)
        .order_by(key)
        .limit(limit)
        .subquery()
        for event_type in sorted(set(event_filter.types))
    ]
    merged = union_all(*(select(branch) for branch in branches)).subquery()
    outer_key = merged.c.sequence.desc() if descending else merged.c.sequence.asc()
    return select(merged).order_by(outer_key).limit(limit)


# A dict lookup: EventType(value) costs several times more, once per row of every page.
_EVENT_TYPES = {event_type.value: event_type for event_type in EventType}


def _event(row: Any) -> StoredEvent:
    # Unpacked by position (the order of _COLUMNS): cheaper than a Row's attribute lookups.
    sequence, event_id, event_type, run_id, symbol, reason, ts_ns, payload = row
    return StoredEvent(
        sequence=sequence,
        event_id=event_id,
        type=_EVENT_TYPES[event_type],
        run_id=run_id,
        symbol=symbol,
        reason=reason,
        ts_ns=ts_ns,
        payload=payload,
    )


def page_statement(
    event_filter: EventFilter, *, before: int | None, limit: int, range_first: bool = False
) -> Select[Any]:
    """Return the statement of one page, newest first (exposed for EXPLAIN in tests and bench).

    `range_first` serves a pure, closed time range from the (ts_ns, sequence) index: the newest
    `limit` sequences among the range's index entries (an index-only scan of the range), then
    those rows by primary key.
    """
    cursor = None if before is None else EventRow.sequence < before
    if not range_first:
        return _ordered(event_filter, cursor=cursor, descending=True, limit=limit)
    conditions = _conditions(event_filter)
    if cursor is not None:
        conditions.append(cursor)
    # "+ 0" keeps the planner off the primary key: it would walk it from the newest event,
    # expecting matches to be spread evenly, and skip every event newer than the range.
    newest = (
        select(EventRow.sequence)
        .where(*conditions)
        .order_by((EventRow.sequence + 0).desc())
        .limit(limit)
        .subquery()
    )
    return (
        select(*_COLUMNS)
        .join(newest, EventRow.sequence == newest.c.sequence)
        .order_by(EventRow.sequence.desc())
    )


def _pure_closed_range(event_filter: EventFilter) -> bool:
    return event_filter.end_ns is not None and not (
        event_filter.types or event_filter.run_id or event_filter.reason or event_filter.symbol
    )


async def _range_is_nearer(
    session: AsyncSession, event_filter: EventFilter, *, before: int | None
) -> bool:
    # Event times grow with sequence in practice, which the planner cannot know: it walks the
    # primary key from the newest event expecting matches spread evenly. Where the events newer
    # than the range outnumber those in it, reading the range's index entries is cheaper.
    # Estimates from three index probes in one round trip; they steer speed, never results.
    def first_sequence_from(ts_ns: int | None) -> Any:
        if ts_ns is None:
            return select(func.min(EventRow.sequence)).scalar_subquery()
        return (
            select(EventRow.sequence)
            .where(EventRow.ts_ns >= ts_ns)
            .order_by(EventRow.ts_ns)
            .limit(1)
            .scalar_subquery()
        )

    row = (
        await session.execute(
            select(
                select(func.max(EventRow.sequence)).scalar_subquery(),
                first_sequence_from(event_filter.start_ns),
                first_sequence_from(event_filter.end_ns),
            )
        )
    ).one()
    head, range_start, range_end = row
    if head is None or range_end is None:
        return False  # the range reaches the newest events: the walk finds them first
    top = head if before is None else min(head, before)
    return bool(range_end - (range_start or 0) < top - range_end)


async def list_events(
    *, session: AsyncSession, event_filter: EventFilter, before: int | None, limit: int
) -> list[StoredEvent]:
    """Return up to `limit` matching events with sequence below `before`, newest first."""
    range_first = False
    if _pure_closed_range(event_filter):
        range_first = await _range_is_nearer(session, event_filter, before=before)
    statement = page_statement(event_filter, before=before, limit=limit, range_first=range_first)
    return [_event(row) for row in (await session.execute(statement)).all()]


def reason_counts_statement(event_filter: EventFilter) -> Select[str, int]:
    """Return the GROUP BY counting blocks per reason for a filter (its types are ignored)."""
    blocks = EventFilter(
        types=(EventType.TRADE_BLOCKED,),
        run_id=event_filter.run_id,
        reason=event_filter.reason,
        symbol=event_filter.symbol,
        start_ns=event_filter.start_ns,
        end_ns=event_filter.end_ns,
    )
    count = func.count().label("count")
    return (
        select(EventRow.reason, count)
        .where(*_conditions(blocks))
        .group_by(EventRow.reason)
        .order_by(count.desc(), EventRow.reason)
    )


async def count_block_reasons(
    *, session: AsyncSession, event_filter: EventFilter
) -> list[ReasonCount]:
    """Return how many trade_blocked events match the filter, per reason, largest first."""
    rows = await session.execute(reason_counts_statement(event_filter))
    return [ReasonCount(reason=reason, count=count) for reason, count in rows]


async def head_sequence(*, session: AsyncSession) -> int:
    """Return the largest sequence stored, 0 for an empty store."""
    value = await session.scalar(select(func.coalesce(func.max(EventRow.sequence), 0)))
    return int(value or 0)


async def read_after(
    *, session: AsyncSession, event_filter: EventFilter, after: int, up_to: int, limit: int
) -> list[StoredEvent]:
    """Return matching events with after < sequence <= up_to, oldest first, at most `limit`."""
    cursor = (EventRow.sequence > after) & (EventRow.sequence <= up_to)
    statement = _ordered(event_filter, cursor=cursor, descending=False, limit=limit)
    return [_event(row) for row in (await session.execute(statement)).all()]


async def get_event(*, session: AsyncSession, sequence: int) -> StoredEvent:
    """Return the event stored at a sequence."""
    row = (await session.execute(select(*_COLUMNS).where(EventRow.sequence == sequence))).one()
    return _event(row)
