"""Start and stop a service's outbox drainer, and wake it when a commit enqueued events.

`publish` wraps `outbox.enqueue`: after the session's transaction commits, every drainer
running in this process is woken, so events leave within milliseconds instead of at the next
poll; a rolled-back transaction wakes nobody. (In a process running several services, such as
the tests, a wake of another service's drainer only costs it one empty query.)
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import SecretStr
from sqlalchemy import Table, event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from tapedeck.live.v1 import live_pb2
from tapedeck_common.outbox import OutboxPublisher, enqueue

_WAKE_KEY = "tapedeck_outbox_wake"
_running: set[OutboxPublisher] = set()


async def publish(*, session: AsyncSession, table: Table, events: Sequence[live_pb2.Event]) -> None:
    """Enqueue events in the session's transaction and wake the drainers once it commits."""
    if not events:
        return
    await enqueue(session=session, table=table, events=events)
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


def start_drainer(
    *,
    sessions: async_sessionmaker[AsyncSession],
    table: Table,
    address: str,
    service_token: str | None,
    retry_max_seconds: float,
) -> OutboxPublisher:
    """Start draining an outbox to the live service at `address`; stop it with `stop_drainer`."""
    drainer = OutboxPublisher(
        sessions=sessions,
        table=table,
        address=address,
        service_token=service_token,
        backoff_seconds=(min(1.0, retry_max_seconds), 1.5, retry_max_seconds),
    )
    drainer.start()
    _running.add(drainer)
    return drainer


async def stop_drainer(drainer: OutboxPublisher) -> None:
    """Stop draining; what is left is sent after the next start."""
    _running.discard(drainer)
    await drainer.stop()


def secret_value(secret: SecretStr | None) -> str | None:
    """Return a secret setting's value, or None when unset."""
    return None if secret is None else secret.get_secret_value()
