"""The database's part in a service's health: NOT_SERVING while the database stalls, SERVING again
once it answers.

A database stalls when a call cannot get a pooled connection, or cannot write, for longer than
`db_stall_seconds`: every connection is held (the pool waits), or a lock is held (on SQLite the
database's write lock, taken by another connection or left by a stuck transaction; on PostgreSQL a
lock this service's sessions wait for). The check reads the pool's own bookkeeping and then asks
the database, each within the bound; it never cancels a query (that can strand a connection), it
only stops waiting for the answer.

Idle, nothing is checked (no transaction while no connection is in use): a stall only matters to
calls that use the database, and they hold connections while they wait. Once NOT_SERVING, the
check repeats until the database answers, since a gateway then sends no calls that would start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck_common import database_health_repository as repository
from tapedeck_common.database import TimedPool, application_name, is_postgres

logger = logging.getLogger(__name__)


class DatabaseHealth:
    """Check the database every `interval` seconds while it is in use; report stalls as health."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        servicer: health.aio.HealthServicer,
        names: Sequence[str],
        service: str,
        interval: float,
        stall: float,
    ) -> None:
        self._engine = engine
        self._servicer = servicer
        self._names = tuple(names)
        self._application = application_name(service)
        self._interval = interval
        self._stall = stall
        self._stalled = False
        self._probe: asyncio.Future[str | None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> DatabaseHealth:
        """Check in the background from now on."""
        self._task = asyncio.create_task(self._run(), name="database-health")
        return self

    async def stop(self) -> None:
        """Stop checking (a probe still waiting for the database is left to end by itself)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._probe is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._probe), timeout=self._stall)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self._stalled and not self._in_use():
                continue
            await self._report(await self.check())

    def _in_use(self) -> bool:
        checked_out = getattr(self._engine.pool, "checkedout", None)
        return checked_out is not None and checked_out() > 0

    async def check(self) -> str | None:
        """Return why the database is stalled now, or None when it answered within the bound."""
        pool = self._engine.pool
        if isinstance(pool, TimedPool) and pool.longest_wait() > self._stall:
            return f"no pooled connection free for {pool.longest_wait():.1f} s"
        # A probe still waiting from an earlier check is waited for again, never doubled; it is
        # not cancelled either, but ends by itself (a pool or busy timeout, or an answer).
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._ask())
        probe = self._probe
        done, _ = await asyncio.wait({probe}, timeout=self._stall)
        if not done:
            return f"the database did not answer within {self._stall:g} s"
        self._probe = None
        try:
            return probe.result()
        except (OSError, SQLAlchemyError) as error:
            return f"the database failed: {str(error).splitlines()[0]}"

    async def _ask(self) -> str | None:
        async with self._engine.connect() as connection:
            if is_postgres(self._engine):
                waited = await repository.longest_lock_wait(
                    connection=connection, application=self._application
                )
                if waited > self._stall:
                    return f"a statement has waited {waited:.1f} s for a lock"
                return None
            if not await repository.take_write_lock(connection=connection, within=self._stall):
                return f"the write lock has been held for over {self._stall:g} s"
            return None

    async def _report(self, problem: str | None) -> None:
        stalled = problem is not None
        if stalled == self._stalled:
            return
        if stalled:
            logger.error("database stalled, health NOT_SERVING: %s", problem)
        else:
            logger.info("the database answers again: health SERVING")
        self._stalled = stalled
        status = health_pb2.HealthCheckResponse
        for name in self._names:
            await self._servicer.set(name, status.NOT_SERVING if stalled else status.SERVING)
