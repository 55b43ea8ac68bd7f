"""The SQL of lists newest first (datasets, runs, sweeps): keyset pages on (create_time, id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from tapedeck_backtest.keysets import Keyset


def newest_first[S: Select[Any]](
    statement: S,
    *,
    created: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    after: Keyset | None,
    limit: int,
) -> S:
    """Order by (created, id) descending from just after `after`, at most `limit` rows."""
    if after is not None:
        moment, last_id = after
        statement = statement.where(
            or_(created < moment, and_(created == moment, row_id < last_id))
        )
    return statement.order_by(created.desc(), row_id.desc()).limit(limit)
