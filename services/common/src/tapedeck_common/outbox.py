"""A transactional outbox for publishing live events from another service's own database.

A publisher writes its events into its outbox table in the same transaction as the change they
describe (`enqueue`), so an event exists exactly when the change does. `OutboxPublisher` drains
the table in the background through `LiveService/AppendEvents`: rows are deleted only after the
live service stored them, and AppendEvents is idempotent on event_id, so a crash between the two
resends and the live service counts a duplicate: every event arrives exactly once, whenever the
live service is back.

Each publishing service adds `outbox_table(Base.metadata, service=...)` to its models and a migration for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
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
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.live.v1 import live_pb2, live_pb2_grpc

logger = logging.getLogger(__name__)

# Statuses a resend cannot fix: the row is parked with the reason instead of blocking the queue.
_REFUSED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)


def outbox_table_name(service: str) -> str:
    """Return a service's outbox table name; one per service, so services can share a database."""
    return f"{service}_live_outbox"


def outbox_table(metadata: MetaData, *, service: str) -> Table:
    """Define the service's outbox table in its metadata (its migration creates it)."""
    return Table(
        outbox_table_name(service),
        metadata,
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
        Column("event_id", String(128), nullable=False, unique=True),
        Column("event", LargeBinary, nullable=False),  # a serialized tapedeck.live.v1.Event
        Column("create_time", DateTime(timezone=True), nullable=False),
        Column("refused", Text, nullable=True),  # why the live service refused it, if it did
    )


async def enqueue(*, session: AsyncSession, table: Table, events: Sequence[live_pb2.Event]) -> None:
    """Add events to the outbox in the session's transaction."""
    if not events:
        return
    now = datetime.now(UTC)
    await session.execute(
        insert(table),
        [
            {"event_id": e.event_id, "event": e.SerializeToString(), "create_time": now}
            for e in events
        ],
    )


class OutboxPublisher:
    """Drain an outbox to the live service in the background, retrying with backoff."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        address: str,
        service_token: str | None,
        batch_size: int = 500,
        poll_seconds: float = 5.0,
        call_timeout_seconds: float = 10.0,
        backoff_seconds: tuple[float, float, float] = (1.0, 1.5, 30.0),
    ) -> None:
        self._sessions = sessions
        self._table = table
        self._metadata: tuple[tuple[str, str], ...] = (
            () if service_token is None else (("authorization", f"Bearer {service_token}"),)
        )
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._call_timeout = call_timeout_seconds
        self._base, self._factor, self._cap = backoff_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channel = grpc.aio.insecure_channel(address)  # connects lazily, on first call
        self._stub = live_pb2_grpc.LiveServiceStub(self._channel)

    def start(self) -> None:
        """Start draining in the background."""
        self._task = asyncio.create_task(self._run(), name="live-outbox")

    def notify(self) -> None:
        """Drain now rather than at the next poll (call after committing an enqueue)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop draining; what is left is sent after the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._channel.close()

    async def drain_once(self) -> int:
        """Send one batch; return how many rows left the outbox (stored or parked)."""
        rows = await self._pending()
        if not rows:
            return 0
        events = [live_pb2.Event.FromString(row.event) for row in rows]
        try:
            await self._stub.AppendEvents(
                live_pb2.AppendEventsRequest(events=events),
                timeout=self._call_timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() not in _REFUSED:
                raise
            if len(rows) == 1:
                await self._park(rows[0].id, f"{error.code().name}: {error.details()}")
                return 1
            # One bad event refuses its batch: send one by one to park only the bad ones.
            return sum([await self._send_alone(row) for row in rows])
        await self._remove([row.id for row in rows])
        return len(rows)

    async def _send_alone(self, row: Any) -> int:
        try:
            await self._stub.AppendEvents(
                live_pb2.AppendEventsRequest(events=[live_pb2.Event.FromString(row.event)]),
                timeout=self._call_timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() not in _REFUSED:
                raise
            await self._park(row.id, f"{error.code().name}: {error.details()}")
            return 1
        await self._remove([row.id])
        return 1

    async def _pending(self) -> list[Any]:
        async with self._sessions() as session:
            result = await session.execute(
                select(self._table.c.id, self._table.c.event)
                .where(self._table.c.refused.is_(None))
                .order_by(self._table.c.id)
                .limit(self._batch_size)
            )
            return list(result.all())

    async def _remove(self, ids: list[int]) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(self._table).where(self._table.c.id.in_(ids)))

    async def _park(self, row_id: int, reason: str) -> None:
        logger.error("live service refused outbox event %s: %s", row_id, reason)
        async with self._sessions.begin() as session:
            await session.execute(
                update(self._table).where(self._table.c.id == row_id).values(refused=reason)
            )

    async def _run(self) -> None:
        delay = self._base
        while True:
            try:
                while await self.drain_once() > 0:
                    pass
                delay = self._base
                wait = self._poll_seconds
            except (grpc.aio.AioRpcError, OSError) as error:
                status = error.code().name if isinstance(error, grpc.aio.AioRpcError) else error
                logger.warning("live service unreachable (%s); retrying in %.1fs", status, delay)
                wait, delay = delay, min(delay * self._factor, self._cap)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
