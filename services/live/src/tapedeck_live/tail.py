"""The live tail: one reader fetches each new batch once and shares it with every subscriber.

A subscriber first reads its backlog from the database after its own cursor, only when its
consumer has taken the previous batch (the gRPC write awaits flow control). Once its cursor is
within the shared window of recent events, it takes its matches from that window in memory and
holds no database connection while it waits. A subscriber that falls behind the window (a slow
consumer) reads from the database again, from where it was. Memory stays bounded by the window
and one batch per subscriber.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_common.metrics import Probe, Sample
from tapedeck_common.shielded import ShieldedWork
from tapedeck_live import repository
from tapedeck_live.domain import EventFilter, StoredEvent
from tapedeck_live.notifier import Notifier

logger = logging.getLogger(__name__)

_EVERY_EVENT = EventFilter()


@dataclass(frozen=True)
class TailBatch:
    """Events in increasing sequence (none for a heartbeat) and the cursor after them."""

    events: list[StoredEvent]
    cursor: int


@dataclass(eq=False)
class Subscriber:
    """A subscription following the tail: the cursor its consumer has taken."""

    cursor: int


@dataclass(frozen=True)
class Lag:
    """How far the furthest-behind subscriber is from the head the reader has seen."""

    events: int
    """Sequence numbers between the head and the lowest cursor (about the events still owed)."""
    seconds: float
    """Age of the oldest event a subscriber has not taken yet (0 when all are at the head)."""


class Fanout:
    """The shared reader: every event after its start, read once, kept in a bounded window.

    It reads when the notifier says the store may have grown, never on a timer: an idle store
    costs no query. `published` wakes subscribers each time the window moves on.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        batch_size: int,
        window_events: int,
        retry_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._notifier = notifier
        self._batch_size = batch_size
        self._window_events = window_events
        self._retry_seconds = retry_seconds
        self.published = Notifier()
        self._window: list[StoredEvent] = []
        self._read_at: list[float] = []  # when each window event was read (monotonic)
        self._subscribers: set[Subscriber] = set()
        self._floor = 0  # every event after the floor and up to the cursor is in the window
        self._cursor = 0
        self._ready = asyncio.Event()
        self._reads = ShieldedWork()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reading in the background."""
        self._task = asyncio.create_task(self._run(), name="live-fanout")

    async def stop(self) -> None:
        """Stop reading (a read under way finishes first and returns its connection)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reads.wait_idle()

    @contextlib.contextmanager
    def subscriber(self, cursor: int) -> Iterator[Subscriber]:
        """Count a subscription in the lag for as long as it follows the tail."""
        subscriber = Subscriber(cursor)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def lag(self) -> Lag:
        """Return how far behind the furthest-behind subscriber is."""
        if not self._subscribers:
            return Lag(0, 0.0)
        lowest = min(subscriber.cursor for subscriber in self._subscribers)
        if lowest >= self._cursor or not self._window:
            return Lag(max(self._cursor - lowest, 0), 0.0)
        # Behind the window, the oldest event kept is the best bound known without a query.
        first = bisect.bisect_right(self._window, lowest, key=lambda event: event.sequence)
        oldest = self._read_at[min(first, len(self._read_at) - 1)]
        return Lag(self._cursor - lowest, time.monotonic() - oldest)

    def probes(self) -> list[Probe]:
        """Return the gauges of the subscribers' lag (their number: `tapedeck_rpc_open_streams`)."""

        async def events() -> list[Sample]:
            return [((), float(self.lag().events))]

        async def seconds() -> list[Sample]:
            return [((), self.lag().seconds)]

        return [
            Probe(
                "tapedeck_live_subscriber_max_lag_events",
                "Sequence numbers between the newest event and the furthest-behind subscriber's"
                " cursor.",
                (),
                events,
            ),
            Probe(
                "tapedeck_live_subscriber_max_lag_seconds",
                "Age of the oldest event a subscriber has not taken yet (0: all at the head).",
                (),
                seconds,
            ),
        ]

    async def ready(self) -> None:
        """Wait until the reader knows the head of the store."""
        await self._ready.wait()

    def after(
        self, cursor: int, event_filter: EventFilter, limit: int
    ) -> tuple[list[StoredEvent], int, bool] | None:
        """Return (matches after `cursor`, the cursor after them, full); None: read the store."""
        if cursor < self._floor:
            return None
        if cursor >= self._cursor:
            return [], cursor, False
        start = bisect.bisect_right(self._window, cursor, key=lambda event: event.sequence)
        matches: list[StoredEvent] = []
        for event in self._window[start:]:
            if event_filter.matches(event):
                matches.append(event)
                if len(matches) == limit:
                    return matches, event.sequence, True
        return matches, self._cursor, False

    async def _run(self) -> None:
        while True:
            seen = self._notifier.generation
            try:
                await self._reads.run(self._catch_up())
            except (SQLAlchemyError, OSError) as error:
                logger.warning("reading new events failed, retrying: %s", error)
                await asyncio.sleep(self._retry_seconds)
                continue
            await self._notifier.wait(seen, within=None)

    async def _catch_up(self) -> None:
        while True:
            async with self._sessions() as session:
                head = await repository.head_sequence(session=session)
                if not self._ready.is_set():
                    self._floor = self._cursor = head
                    self._ready.set()
                if head <= self._cursor:
                    return
                events = await repository.read_after(
                    session=session,
                    event_filter=_EVERY_EVENT,
                    after=self._cursor,
                    up_to=head,
                    limit=self._batch_size,
                )
            full = len(events) == self._batch_size
            self._window.extend(events)
            self._read_at.extend([time.monotonic()] * len(events))
            self._cursor = events[-1].sequence if full else head
            if len(self._window) > self._window_events:
                dropped = len(self._window) - self._window_events
                self._floor = self._window[dropped - 1].sequence
                del self._window[:dropped]
                del self._read_at[:dropped]
            self.published.wake()
            if not full:
                return


async def follow(
    *,
    sessions: async_sessionmaker[AsyncSession],
    fanout: Fanout,
    readers: asyncio.Semaphore,
    reads: ShieldedWork,
    event_filter: EventFilter,
    after: int | None,
    batch_size: int,
    heartbeat_seconds: float,
) -> AsyncIterator[TailBatch]:
    """Yield matching events after `after` (None: from now on), then the tail, and heartbeats.

    `readers` bounds how many subscribers read the store at once (backlogs and slow consumers),
    so they queue here rather than exhaust the connection pool that appends and lists need too.
    """
    if after is None:
        cursor, _ = await reads.run(_read(sessions, readers, event_filter, None, batch_size))
    else:
        cursor = after
    await fanout.ready()
    last_sent = float("-inf")  # the first batch goes out at once, even empty: the stream is live
    with fanout.subscriber(cursor) as subscriber:
        while True:
            seen = fanout.published.generation
            shared = fanout.after(cursor, event_filter, batch_size)
            if shared is None:
                head, events = await reads.run(
                    _read(sessions, readers, event_filter, cursor, batch_size)
                )
                full = len(events) == batch_size
                cursor = events[-1].sequence if full else max(cursor, head)
            else:
                events, cursor, full = shared
            if events or time.monotonic() - last_sent >= heartbeat_seconds:
                yield TailBatch(events=events, cursor=cursor)
                last_sent = time.monotonic()
            subscriber.cursor = cursor  # taken by the consumer, or nothing in it matched
            if full:
                continue  # more backlog: read on without waiting
            idle = heartbeat_seconds - (time.monotonic() - last_sent)
            await fanout.published.wait(seen, within=max(idle, 0.0))


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
