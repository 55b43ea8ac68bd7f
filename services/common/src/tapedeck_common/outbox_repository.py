"""All SQL of the transactional outbox: one table per publishing service, rows in id order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession


class Event(Protocol):
    """What an outbox holds: a message with a unique id, the receiver's idempotency key."""

    @property
    def event_id(self) -> str: ...

    def SerializeToString(self) -> bytes: ...


@dataclass(frozen=True)
class Pending:
    """An outbox row waiting to be sent: its id and the serialized message."""

    id: int
    body: bytes
    request_id: str | None


def outbox_table(metadata: MetaData, *, name: str) -> Table:
    """Define an outbox table in a service's metadata (its migration creates it)."""
    return Table(
        name,
        metadata,
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
        Column("event_id", String(128), nullable=False, unique=True),
        Column("event", LargeBinary, nullable=False),  # the serialized message
        Column("create_time", DateTime(timezone=True), nullable=False),
        Column("refused", Text, nullable=True),  # why the receiver refused it, if it did
        Column("request_id", String(64), nullable=True),  # of the request that published it
    )


async def enqueue(
    *, session: AsyncSession, table: Table, events: Sequence[Event], request_id: str | None = None
) -> None:
    """Add events to the outbox in the session's transaction, with the publishing request's id."""
    if not events:
        return
    now = datetime.now(UTC)
    await session.execute(
        insert(table),
        [
            {
                "event_id": e.event_id,
                "event": e.SerializeToString(),
                "create_time": now,
                "request_id": request_id,
            }
            for e in events
        ],
    )


async def pending(*, session: AsyncSession, table: Table, limit: int) -> list[Pending]:
    """Return the oldest rows not refused, at most `limit`."""
    result = await session.execute(
        select(table.c.id, table.c.event, table.c.request_id)
        .where(table.c.refused.is_(None))
        .order_by(table.c.id)
        .limit(limit)
    )
    return [Pending(id=row.id, body=row.event, request_id=row.request_id) for row in result]


async def backlog(*, session: AsyncSession, table: Table) -> tuple[int, datetime | None]:
    """Return how many rows wait to be sent and when the oldest of them was written."""
    waiting = table.c.refused.is_(None)
    row = (
        await session.execute(select(func.count(), func.min(table.c.create_time)).where(waiting))
    ).one()
    oldest = row[1]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return int(row[0]), oldest


async def remove(*, session: AsyncSession, table: Table, ids: Sequence[int]) -> None:
    """Delete rows the receiver stored."""
    await session.execute(delete(table).where(table.c.id.in_(ids)))


async def park(*, session: AsyncSession, table: Table, row_id: int, reason: str) -> None:
    """Keep a refused row with the reason, out of the queue."""
    await session.execute(update(table).where(table.c.id == row_id).values(refused=reason))
