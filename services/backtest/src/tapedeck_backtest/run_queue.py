"""The durable run queue: QUEUED rows in the database, claimed atomically by one owner each.

PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` lets several service replicas claim concurrently
without waiting on each other. SQLite has one writer at a time: a conditional UPDATE
(`WHERE state = 'QUEUED'`) that only one claimer can win.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck_backtest import publishing
from tapedeck_backtest.models import BacktestRow
from tapedeck_backtest.runs import RunState, running_content_version


async def claim_next(
    *, session: AsyncSession, owner: str, now: datetime, postgres: bool
) -> str | None:
    """Move the oldest QUEUED run to RUNNING under `owner` and return its id, or None."""
    candidates = (
        select(BacktestRow.id, BacktestRow.attempts)
        .where(BacktestRow.state == RunState.QUEUED.value)
        .order_by(BacktestRow.create_time, BacktestRow.id)
        .limit(1 if postgres else 8)
    )
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    for run_id, attempts in await session.execute(candidates):
        result = await session.execute(
            update(BacktestRow)
            .where(BacktestRow.id == run_id, BacktestRow.state == RunState.QUEUED.value)
            .values(
                state=RunState.RUNNING.value,
                owner=owner,
                attempts=attempts + 1,
                start_time=now,
                heartbeat_time=now,
                progress_json=None,
                content_version=running_content_version(run_id, RunState.RUNNING, attempts + 1),
            )
        )
        if result.rowcount:  # type: ignore[attr-defined]
            await publishing.run_started(
                session=session, run_id=run_id, attempt=attempts + 1, now=now
            )
            return run_id
    return None
