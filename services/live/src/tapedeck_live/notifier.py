"""Wake-ups for live subscribers: in process, and across replicas through PostgreSQL LISTEN/NOTIFY.

A wake-up carries no events, only "the store may have grown": the shared reader (tail.Fanout)
then reads the new events once. Wake-ups coalesce, so nothing queues up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from tapedeck_live.repository import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

# How the LISTEN connection shows in pg_stat_activity.
LISTENER_APPLICATION = "tapedeck-live-listener"


class Notifier:
    """A generation counter subscribers wait on; every wake() bumps it and releases all waiters."""

    def __init__(self) -> None:
        self._generation = 0
        self._changed = asyncio.Event()

    @property
    def generation(self) -> int:
        """Return the current generation; pass it to wait() to not miss a wake-up in between."""
        return self._generation

    def wake(self) -> None:
        """Tell every waiting subscriber the store may have grown."""
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, seen: int, *, within: float | None) -> bool:
        """Wait until the generation moves past `seen`; False when `within` seconds passed first.

        `within=None` waits for as long as it takes.
        """
        if self._generation != seen:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), within)
        except TimeoutError:
            return False
        return True


class PostgresListener:
    """LISTEN on a dedicated asyncpg connection and wake the notifier; reconnect when it is lost."""

    def __init__(
        self, *, dsn: str, notifier: Notifier, retry_seconds: float, probe_seconds: float = 5.0
    ) -> None:
        self._dsn = dsn
        self._notifier = notifier
        self._retry_seconds = retry_seconds
        self._probe_seconds = probe_seconds
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._run(), name="live-listener")

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
            # Subscribers re-read while the connection is down, so nothing waits on a lost NOTIFY.
            self._notifier.wake()
            await asyncio.sleep(self._retry_seconds)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": LISTENER_APPLICATION}
        )
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
            self.listening.set()
            # Events appended while we were not listening are picked up by this wake-up.
            self._notifier.wake()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._probe_seconds)
                if not lost.is_set():
                    # A half-open TCP connection only shows itself when used.
                    await connection.fetchval("SELECT 1", timeout=self._probe_seconds)
            raise OSError("the server closed the LISTEN connection")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)

    def _on_notify(self, *_args: Any) -> None:
        self._notifier.wake()
