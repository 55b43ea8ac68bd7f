"""The live tail of one subscriber: backlog after its cursor, then new events as they commit.

Memory stays bounded by one batch per subscriber: the subscriber reads from the database after
its own cursor, and only when its consumer has taken the previous batch (the gRPC write awaits
flow control). A slow consumer simply reads later, from where it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_live import repository
from tapedeck_live.domain import EventFilter, StoredEvent
from tapedeck_live.notifier import Notifier

T = TypeVar("T")


@dataclass(frozen=True)
class TailBatch:
    """Events in increasing sequence (none for a heartbeat) and the cursor after them."""

    events: list[StoredEvent]
    cursor: int


async def follow(
    *,
    sessions: async_sessionmaker[AsyncSession],
    notifier: Notifier,
    readers: asyncio.Semaphore,
    reads: ShieldedReads,
    event_filter: EventFilter,
    after: int | None,
    batch_size: int,
    heartbeat_seconds: float,
) -> AsyncIterator[TailBatch]:
    """Yield matching events after `after` (None: from now on), then the tail, and heartbeats.

    `readers` bounds how many subscribers read at once: a wake-up releases every subscriber
    together, and they must queue here rather than exhaust the connection pool that appends and
    lists need too.
    """
    if after is None:
        cursor, _ = await reads.run(_read(sessions, readers, event_filter, None, batch_size))
    else:
        cursor = after
    last_sent = float("-inf")  # the first batch goes out at once, even empty: the stream is live
    while True:
        seen = notifier.generation
        head, events = await reads.run(_read(sessions, readers, event_filter, cursor, batch_size))
        full = len(events) == batch_size
        cursor = events[-1].sequence if full else max(cursor, head)
        if events or time.monotonic() - last_sent >= heartbeat_seconds:
            yield TailBatch(events=events, cursor=cursor)
            last_sent = time.monotonic()
        if full:
            continue  # more backlog: read on without waiting
        idle = heartbeat_seconds - (time.monotonic() - last_sent)
        await notifier.wait(seen, within=max(idle, 0.0))


async def _read(
    sessions: async_sessionmaker[AsyncSession],
    readers: asyncio.Semaphore,
    event_filter: EventFilter,
    cursor: int | None,
    batch_size: int,
) -> tuple[int, list[StoredEvent]]:
    async with readers, sessions() as session:
        # Every sequence at or below the head has committed or never will (see repository),
        # so after reading up to it the cursor may move to it even when nothing matched.
        head = await repository.head_sequence(session=session)
        if cursor is None or head <= cursor:
            return head, []
        events = await repository.read_after(
            session=session, event_filter=event_filter, after=cursor, up_to=head, limit=batch_size
        )
        return head, events


class ShieldedReads:
    """Database reads a cancelled subscriber lets finish, awaited before the engine is disposed.

    A subscriber that goes away cancels its handler, possibly mid-query; cancelling the query
    itself can strand its pooled connection, so the read finishes on its own and returns it.
    """

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    async def run(self, read: Coroutine[Any, Any, T]) -> T:
        """Await a read that survives the caller's cancellation."""
        task = asyncio.ensure_future(read)
        self._running.add(task)
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    async def wait_idle(self) -> None:
        """Wait for reads whose subscribers went away (call before disposing the engine)."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=10)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
