"""The database engine: a SQLite file under the data directory by default, PostgreSQL via asyncpg."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from tapedeck_common.metrics import POOL_WAITS
from tapedeck_common.settings import ServiceSettings
from tapedeck_common.tracing import trace_statements


def database_url(settings: ServiceSettings, *, service: str) -> URL:
    """Return the async driver URL the service connects to."""
    if settings.database_url is None:
        path = (settings.data_dir / f"{service}.db").resolve()
        return URL.create("sqlite+aiosqlite", database=str(path))
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    return url.set(drivername="postgresql+asyncpg")


def is_postgres(engine: AsyncEngine) -> bool:
    """Tell whether the engine talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


def listen_dsn(engine: AsyncEngine) -> str:
    """Return the PostgreSQL engine's URL as a plain DSN for a dedicated asyncpg connection."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class TimedPool(AsyncAdaptedQueuePool):
    """The async queue pool, timing each checkout that finds every connection handed out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: list[float] = []  # when each checkout waiting now began

    def longest_wait(self) -> float:
        """Return how long the longest waiting checkout has waited so far (0: none waits)."""
        return time.perf_counter() - min(self._waiting) if self._waiting else 0.0

    def _do_get(self) -> ConnectionPoolEntry:
        if self.checkedout() < self.size() + self._max_overflow:
            return super()._do_get()
        started = time.perf_counter()
        self._waiting.append(started)
        try:
            return super()._do_get()
        finally:
            self._waiting.remove(started)
            POOL_WAITS.observe(time.perf_counter() - started)


class Commits:
    """Count this process's commits to a database: whoever read rows can tell if they may differ."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "commit", self._committed)

    def _committed(self, _connection: Any) -> None:
        self.count += 1


def application_name(service: str) -> str:
    """Return the name the service's PostgreSQL sessions carry (in pg_stat_activity)."""
    return f"tapedeck-{service}"


def create_engine(settings: ServiceSettings, *, service: str) -> AsyncEngine:
    """Create the service's engine with the pool settings; SQLite gets WAL and foreign keys."""
    url = database_url(settings, service=service)
    pool = {
        "poolclass": TimedPool,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
    }
    if url.get_backend_name() == "sqlite":
        if url.database not in (None, "", ":memory:"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        trace_statements(engine)
        return engine
    engine = create_async_engine(
        url,
        **pool,
        pool_recycle=settings.db_pool_recycle_seconds,
        connect_args={"server_settings": {"application_name": application_name(service)}},
    )
    if settings.db_pool_pre_ping:
        _ping_after_idle(engine, settings.db_pool_pre_ping_idle_seconds)
    trace_statements(engine)
    return engine


def _ping_after_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    # SQLAlchemy's pool_pre_ping checks every checkout, and on asyncpg a check is three round
    # trips (BEGIN, ";", ROLLBACK: ~0.35 ms), paid by every transaction. A connection handed
    # back moments ago is almost surely alive, so only one idle longer is checked (as
    # HikariCP's aliveBypassWindow does); a dead one is replaced before anyone uses it.
    dialect = engine.dialect

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned <= idle_seconds:
            return  # just connected, or used moments ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError(f"pooled connection failed its check: {error}") from error

    event.listen(engine.sync_engine, "checkin", checked_in)
    event.listen(engine.sync_engine, "checkout", checked_out)


_RETURNED = "tapedeck_returned_at"
BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite statement waits for another connection's write lock."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session factory repositories are handed sessions from."""
    return async_sessionmaker(engine, expire_on_commit=False)
