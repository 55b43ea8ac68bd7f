"""A transactional outbox: events leave a service's own database for another service, once each.

A publisher writes its events into its outbox table in the same transaction as the change they
describe (`publish`), so an event exists exactly when the change does. An `OutboxDrainer` sends
the table in the background through the `Sender` the publishing service gives it: rows are
deleted only after the receiver stored them, and the receiver is idempotent on `event_id`, so a
crash between the two resends and the receiver counts a duplicate: every event arrives exactly
once, whenever the receiver is back.

After the publishing transaction commits, every drainer running in this process is woken, so
events leave within milliseconds; a rolled-back transaction wakes nobody. (In a process running
several services, such as the tests, a wake of another service's drainer only costs it one empty
query.) Nothing polls: once a drain left the outbox empty, only a publish can fill it again. On
SQLite the database file belongs to this process, whose publishes wake its drainer, and rows a
crashed run of it left are drained at the next start. On PostgreSQL a publish also NOTIFYs the
table's channel, which every replica's drainer LISTENs to: a replica that publishes and dies
before sending is drained by the others, which look `OTHERS_GRACE_SECONDS` after a notification
(the publisher sends its own rows within milliseconds; the grace keeps the others from sending
them again). A lost LISTEN connection wakes the drainer when it is back, for what it missed.

While the receiver is unreachable the drainer backs off (1 s, x1.5, up to `retry_max_seconds`),
but it also waits on the sender's `wait_ready` and retries as soon as the receiver is serving
again. A receiver that rejects the publisher's credential (`Rejected`) is a configuration error:
it is logged once, the drainer's health (`health_name`, reported through `report_to`) turns
NOT_SERVING, and the batch is retried quietly at the longest backoff or when the receiver
restarts, until a send succeeds and the health is SERVING again.

A drainer without a sender delivers nothing: its events stay in the outbox (a service configured
with no receiver, as in tests and benchmarks that start no live service), and are sent once the
service starts again with one.

Each publishing service adds `outbox_repository.outbox_table(Base.metadata, name=...)` to its
models and a migration for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from grpc_health.v1 import health, health_pb2
from sqlalchemy import Table, event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from tapedeck_common import outbox_repository
from tapedeck_common.listener import listener_for
from tapedeck_common.metrics import Probe, Sample
from tapedeck_common.notify_repository import announce
from tapedeck_common.outbox_repository import Event, Pending
from tapedeck_common.request_ids import bound, current_request_id

logger = logging.getLogger(__name__)

_WAKE_KEY = "tapedeck_outbox_wake"

# How long after another replica's publish a drainer looks: that replica sends its own events
# within milliseconds, so this one only finds them if it died first.
OTHERS_GRACE_SECONDS = 2.0


def channel_of(table: Table) -> str:
    """Return the NOTIFY channel of an outbox table (PostgreSQL)."""
    return f"tapedeck_outbox_{table.name}"


class Refused(Exception):
    """The receiver refused the batch and a resend cannot change that; the message says why."""


class RetryLater(Exception):
    """The receiver could not be reached or did not answer; the batch is sent again later."""


class Rejected(Exception):
    """The receiver rejected the publisher's credential: a configuration error, not an outage."""


class Sender(Protocol):
    """Delivers batches of serialized events to their receiver, all or nothing."""

    async def send(self, events: Sequence[bytes]) -> None:
        """Return once the receiver stored the batch; raise `Refused`, `Rejected` or `RetryLater`."""
        ...

    async def wait_ready(self) -> None:
        """Return once the receiver is serving again after being down or not serving."""
        ...

    async def close(self) -> None:
        """Release the connection to the receiver."""
        ...


_running: set[OutboxDrainer] = set()


async def publish(*, session: AsyncSession, table: Table, events: Sequence[Event]) -> None:
    """Enqueue events in the session's transaction and wake the drainers once it commits."""
    if not events:
        return
    await outbox_repository.enqueue(
        session=session, table=table, events=events, request_id=current_request_id.get()
    )
    await announce(session, channel_of(table))
    sync_session = session.sync_session
    if not sync_session.info.get(_WAKE_KEY):
        sync_session.info[_WAKE_KEY] = True
        event.listen(sync_session, "after_commit", _wake, once=True)
        event.listen(sync_session, "after_rollback", _forget, once=True)


def _wake(session: Session) -> None:
    session.info.pop(_WAKE_KEY, None)
    for drainer in _running:
        drainer.notify()


def _forget(session: Session) -> None:
    session.info.pop(_WAKE_KEY, None)


class OutboxDrainer:
    """Drain an outbox through a sender in the background, retrying with backoff."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        sender: Sender | None,
        retry_max_seconds: float = 30.0,
        batch_size: int = 500,
    ) -> None:
        self._sessions = sessions
        self._table = table
        self._sender = sender
        self._batch_size = batch_size
        # Waits between attempts while the receiver is unreachable: 1 s, x1.5, up to the cap.
        self._base, self._factor, self._cap = min(1.0, retry_max_seconds), 1.5, retry_max_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener = listener_for(
            sessions,
            channel=channel_of(table),
            application=f"tapedeck-outbox-{table.name}",
            wake=self._published_elsewhere,
            retry_seconds=retry_max_seconds,
        )
        self._grace: asyncio.TimerHandle | None = None
        self._rejected: str | None = None
        self._health: health.aio.HealthServicer | None = None
        # Bumped by each publish in this process and each removal here: the backlog may differ.
        self._changes = 0
        self._probed: tuple[int, int] | None = None  # (changes, events waiting) at the last probe

    @property
    def health_name(self) -> str:
        """The name under which the service's gRPC health reports this outbox."""
        return f"tapedeck.outbox.{self._table.name}"

    async def report_to(self, servicer: health.aio.HealthServicer) -> None:
        """Report this outbox's health (NOT_SERVING while its credential is rejected)."""
        self._health = servicer
        await self._report()

    async def _report(self) -> None:
        if self._health is not None:
            status = health_pb2.HealthCheckResponse
            await self._health.set(
                self.health_name, status.NOT_SERVING if self._rejected else status.SERVING
            )

    def start(self) -> OutboxDrainer:
        """Start draining in the background; commits of `publish` wake it from now on."""
        _running.add(self)  # a publish also tells the gauges the backlog changed
        if self._sender is None:
            logger.info("outbox %s: no receiver configured, events stay in it", self._table.name)
            return self
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self._table.name}")
        if self._listener is not None:
            self._listener.start()
        return self

    def notify(self) -> None:
        """Drain now: events were published."""
        self._changes += 1
        self._wake.set()

    def _published_elsewhere(self) -> None:
        # A NOTIFY (any replica's publish, this one's included) or a LISTEN (re)connection.
        if self._grace is None:
            self._grace = asyncio.get_running_loop().call_later(
                OTHERS_GRACE_SECONDS, self._grace_over
            )

    def _grace_over(self) -> None:
        self._grace = None
        self.notify()

    async def stop(self) -> None:
        """Stop draining and close the sender; what is left is sent after the next start."""
        _running.discard(self)
        if self._listener is not None:
            await self._listener.stop()
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sender is not None:
            await self._sender.close()

    async def drain_once(self) -> int:
        """Send one batch; return how many rows left the outbox (stored or parked)."""
        sender = self._sender
        if sender is None:
            return 0
        async with self._sessions() as session:
            rows = await outbox_repository.pending(
                session=session, table=self._table, limit=self._batch_size
            )
        # Each run of events is sent under the id of the request that published it, so the
        # receiver's logs of the delivery carry that id too.
        for request_id, run in itertools.groupby(rows, key=lambda row: row.request_id):
            with bound(request_id):
                await self._deliver(sender, list(run))
        return len(rows)

    def probes(self) -> list[Probe]:
        """Return the gauges of this outbox: events waiting and the age of the oldest."""
        labels = (self._table.name,)

        async def waiting() -> list[Sample]:
            at = self._changes
            count, _oldest = await self._backlog()
            self._probed = (at, count)
            return [(labels, float(count))]

        async def oldest_age() -> list[Sample]:
            _count, oldest = await self._backlog()
            age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
            return [(labels, max(age, 0.0))]

        return [
            Probe(
                "tapedeck_outbox_events",
                "Events waiting in the outbox.",
                ("outbox",),
                waiting,
                due=self._backlog_may_differ,
            ),
            Probe(
                "tapedeck_outbox_oldest_event_age_seconds",
                "Age of the oldest event waiting in the outbox (0 when empty).",
                ("outbox",),
                oldest_age,
                due=self._backlog_may_differ,
            ),
        ]

    def _backlog_may_differ(self) -> bool:
        # An empty outbox stays empty until a publish here; waiting events age by themselves.
        return self._probed is None or self._probed != (self._changes, 0)

    async def _backlog(self) -> tuple[int, datetime | None]:
        async with self._sessions() as session:
            return await outbox_repository.backlog(session=session, table=self._table)

    async def _deliver(self, sender: Sender, rows: list[Pending]) -> None:
        try:
            await sender.send([row.body for row in rows])
        except Refused as refused:
            if len(rows) > 1:
                # One bad event refuses its whole batch: send one by one to park only the bad.
                for row in rows:
                    await self._deliver(sender, [row])
                return
            logger.error("receiver refused outbox event %s: %s", rows[0].id, refused)
            async with self._sessions.begin() as session:
                await outbox_repository.park(
                    session=session, table=self._table, row_id=rows[0].id, reason=str(refused)
                )
            self._changes += 1
            return
        async with self._sessions.begin() as session:
            await outbox_repository.remove(
                session=session, table=self._table, ids=[row.id for row in rows]
            )
        self._changes += 1
        if self._rejected is not None:
            logger.info("outbox %s: the receiver accepts the credential again", self._table.name)
            self._rejected = None
            await self._report()

    async def _run(self) -> None:
        delay = self._base
        while True:
            ready = False
            try:
                while await self.drain_once() > 0:
                    pass
                delay = self._base
                wait: float | None = None
            except Rejected as error:
                if self._rejected is None:
                    logger.error(
                        "configuration error: the receiver of outbox %s rejects this service's"
                        " credential (%s); its health %s is NOT_SERVING until it is accepted",
                        self._table.name,
                        error,
                        self.health_name,
                    )
                    self._rejected = str(error)
                    await self._report()
                wait, ready = self._cap, True
            except (RetryLater, OSError) as error:
                logger.warning("outbox receiver unreachable (%s); retrying in %.1fs", error, delay)
                wait, delay, ready = delay, min(delay * self._factor, self._cap), True
            await self._sleep(wait, until_ready=ready)
            self._wake.clear()

    async def _sleep(self, seconds: float | None, *, until_ready: bool) -> None:
        """Wait `seconds` (None: no limit), a wake-up, or (after a failure) the receiver serving."""
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._wake.wait())]
        if until_ready and self._sender is not None:
            waits.append(asyncio.ensure_future(self._sender.wait_ready()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
