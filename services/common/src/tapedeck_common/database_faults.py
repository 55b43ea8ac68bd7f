"""Which database errors mean "the database is unusable for now" rather than a bug.

A dropped connection, an exhausted pool, a serialization failure or a SQLite lock held past the
busy timeout says nothing about the request: the caller may send it again. They become
UNAVAILABLE with a retry delay; every other database error stays INTERNAL, a bug to fix.
"""

from __future__ import annotations

import sqlalchemy.exc

from tapedeck_common.errors import Unavailable

RETRY_AFTER_SECONDS = 1.0

# Class 08 connection exceptions, 40001 serialization failure, 40P01 deadlock, 53 insufficient
# resources, 57P01-57P03 the server shutting down or not accepting connections.
_TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "53", "57P01", "57P02", "57P03")
_SQLITE_BUSY = ("database is locked", "database table is locked")


def as_unavailable(error: BaseException) -> Unavailable | None:
    """Return the UNAVAILABLE a transient database error is answered with, or None for others."""
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        return Unavailable("the database is busy (no free connection); retry", RETRY_AFTER_SECONDS)
    if not isinstance(error, sqlalchemy.exc.DBAPIError):
        return _from_driver(error)
    if error.connection_invalidated:
        return Unavailable("the database connection was lost; retry", RETRY_AFTER_SECONDS)
    if isinstance(error, sqlalchemy.exc.OperationalError) and any(
        text in str(error.orig) for text in _SQLITE_BUSY
    ):
        return Unavailable("the database is locked by other writes; retry", RETRY_AFTER_SECONDS)
    return _from_driver(error.orig)


def _from_driver(error: BaseException | None) -> Unavailable | None:
    # asyncpg's own errors (raised outside SQLAlchemy, or wrapped by it) carry the SQLSTATE;
    # a connection closed under a call is an InterfaceError-like error with none, so look at
    # its causes too.
    seen = 0
    while error is not None and seen < 5:
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES):
            return Unavailable("the database is unavailable; retry", RETRY_AFTER_SECONDS)
        if type(error).__name__ in ("ConnectionDoesNotExistError", "InterfaceError") and (
            "connection" in str(error).lower() and "closed" in str(error).lower()
        ):
            return Unavailable("the database connection was lost; retry", RETRY_AFTER_SECONDS)
        if isinstance(error, ConnectionError):
            return Unavailable("the database is unreachable; retry", RETRY_AFTER_SECONDS)
        error = error.__cause__ or error.__context__
        seen += 1
    return None
