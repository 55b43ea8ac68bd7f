"""The live tail of one subscriber: backlog after its cursor, then new events as they commit.

Memory stays bounded by one batch per subscriber: the subscriber reads from the database after
its own cursor, and only when its consumer has taken the previous batch (the gRPC write awaits
flow control). A slow consumer simply reads later, from where it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_live import repository
from tapedeck_live.domain import EventFilter, StoredEvent
from tapedeck_live.notifier import Notifier


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
        async with readers, sessions() as session:
            after = await repository.head_sequence(session=session)
    cursor = after
    last_sent = float("-inf")  # the first batch goes out at once, even empty: the stream is live
    while True:
        seen = notifier.generation
        async with readers, sessions() as session:
            # Every sequence at or below the head has committed or never will (see repository),
            # so after reading up to it the cursor may move to it even when nothing matched.
            head = await repository.head_sequence(session=session)
            events: list[StoredEvent] = []
            if head > cursor:
                events = await repository.read_after(
                    session=session,
                    event_filter=event_filter,
                    after=cursor,
                    up_to=head,
                    limit=batch_size,
                )
        full = len(events) == batch_size
        cursor = events[-1].sequence if full else max(cursor, head)
        if events or time.monotonic() - last_sent >= heartbeat_seconds:
            yield TailBatch(events=events, cursor=cursor)
            last_sent = time.monotonic()
        if full:
            continue  # more backlog: read on without waiting
        idle = heartbeat_seconds - (time.monotonic() - last_sent)
        await notifier.wait(seen, within=max(idle, 0.0))
