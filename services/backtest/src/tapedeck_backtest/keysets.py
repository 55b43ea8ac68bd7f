"""Lists newest first (datasets, runs, sweeps): the (create_time, id) keyset in page tokens."""

from __future__ import annotations

from datetime import datetime

from tapedeck_common.paging import Position

KEYS = (str, str)
"""The types of a newest-first position in a page token: create_time (ISO 8601) and id."""

Keyset = tuple[datetime, str]


def position(create_time: datetime, row_id: str) -> Position:
    """Return the page-token position of a row listed newest first."""
    return create_time.isoformat(), row_id


def keyset(after: Position | None) -> Keyset | None:
    """Return the (create_time, id) a page resumes after, from a checked page-token position."""
    if after is None:
        return None
    return datetime.fromisoformat(str(after[0])), str(after[1])
