"""PostgreSQL NOTIFY and LISTEN: a commit in one replica wakes something in every replica.

`notify_repository.announce` notifies a channel in a transaction (delivered at its commit); a
`PostgresListener` wakes something in process (live subscribers, a run queue, an outbox, the look
for abandoned jobs) on each notification. A SQLite database belongs to one process, which wakes its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tapedeck_common.database import is_postgres, listen_dsn

logger = logging.getLogger(__name__)


def listener_for(
    sessions: async_sessionmaker[AsyncSession],
    *,
    channel: str,
    application: str,
    wake: Callable[[], None],
    retry_seconds: float,
) -> PostgresListener | None:
    """Return a listener on `channel` of the sessions' PostgreSQL database; None on SQLite."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or not is_postgres(bind):
        return None
    return PostgresListener(
        dsn=listen_dsn(bind),
        channel=channel,
        application=application,
        wake=wake,
        retry_seconds=retry_seconds,
    )


class PostgresListener:
    """LISTEN on a dedicated asyncpg connection and call `wake`; reconnect when it is lost.

    `wake` is also called on every (re)connection: what was notified while nobody listened is
    picked up then. A connection whose server went away without closing it (a half-open TCP
    connection) is found by TCP keepalive within about twice `probe_seconds`: the kernel probes
    it, so no query, and no transaction, runs while nothing is notified.
    """

    def __init__(
        self,
        *,
        dsn: str,
        channel: str,
        application: str,
        wake: Callable[[], None],
        retry_seconds: float,
        probe_seconds: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._application = application
        self._wake = wake
        self._retry_seconds = retry_seconds
        self._probe_seconds = probe_seconds
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._run(), name=f"listen-{self._channel}")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                logger.warning("LISTEN connection lost, retrying: %s", error)
            self.listening.clear()
            # Readers re-read while the connection is down, so nothing waits on a lost NOTIFY.
            self._wake()
            await asyncio.sleep(self._retry_seconds)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": self._application}
        )
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(self._channel, self._on_notify)
            _keep_alive(connection, self._probe_seconds)
            self.listening.set()
            # What was notified while we were not listening is picked up by this wake-up.
            self._wake()
            await lost.wait()
            raise OSError("the server closed the LISTEN connection")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)

    def _on_notify(self, *_args: Any) -> None:
        self._wake()


_PROBES = 3


def _keep_alive(connection: asyncpg.Connection, seconds: float) -> None:
    # asyncpg has no keepalive option; its transport is the asyncio one. When the probes go
    # unanswered the socket fails, asyncpg closes the connection and its termination listener
    # sets `lost`. A Unix socket cannot be half-open.
    sock = connection._transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    interval = max(1, round(seconds / _PROBES))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, round(seconds)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, _PROBES)
