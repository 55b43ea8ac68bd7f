"""The queries of the database health check: lock waits on PostgreSQL, the write lock on SQLite."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from tapedeck_common.database import BUSY_TIMEOUT_MS

# The longest lock wait among one service's sessions (its connections carry its application name).
_LONGEST_LOCK_WAIT = text(
    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0)"
    " FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = :application"
    " AND wait_event_type = 'Lock'"
)


async def longest_lock_wait(*, connection: AsyncConnection, application: str) -> float:
    """Return the seconds the longest-waiting PostgreSQL session of `application` has waited."""
    return float(await connection.scalar(_LONGEST_LOCK_WAIT, {"application": application}))


async def take_write_lock(*, connection: AsyncConnection, within: float) -> bool:
    """Take SQLite's write lock and give it back at once; False if it stayed held `within` s."""
    await connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(within * 1000)}")
    try:
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
    except OperationalError as error:
        if "locked" not in str(error):
            raise
        return False
    finally:
        await connection.rollback()
        await connection.exec_driver_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return True
