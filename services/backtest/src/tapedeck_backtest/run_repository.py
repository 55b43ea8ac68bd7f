"""All SQL for runs and sweeps: AsyncSession in, domain objects out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck_backtest import publishing
from tapedeck_backtest.models import BacktestRow, SweepRow, SweepRunRow
from tapedeck_backtest.publishing import Denial
from tapedeck_backtest.runs import (
    Progress,
    Run,
    RunSpec,
    RunState,
    Stats,
    final_content_version,
    running_content_version,
)
from tapedeck_backtest.sweeps import Axis, Sweep, SweepMetric, SweepPoint, SweepState
from tapedeck_common.errors import NotFound


def _run(row: BacktestRow) -> Run:
    return Run(
        id=row.id,
        spec=RunSpec.from_json(row.spec_json),
        spec_hash=row.spec_hash,
        state=RunState(row.state),
        create_time=row.create_time,
        content_version=row.content_version,
        sweep_id=row.sweep_id,
        progress=Progress.from_json(row.progress_json),
        stats=Stats.from_json(row.stats_json) if row.stats_json else None,
        error_message=row.error_message,
        attempts=row.attempts,
        start_time=row.start_time,
        end_time=row.end_time,
    )


async def insert_run(*, session: AsyncSession, run: Run) -> None:
    """Store a new QUEUED run."""
    session.add(
        BacktestRow(
            id=run.id,
            spec_json=run.spec.to_json(),
            spec_hash=run.spec_hash,
            dataset_id=run.spec.dataset_id,
            state=run.state.value,
            sweep_id=run.sweep_id,
            progress_json=None,
            stats_json=None,
            error_message="",
            attempts=0,
            owner=None,
            heartbeat_time=None,
            content_version=run.content_version,
            create_time=run.create_time,
        )
    )


async def find_succeeded(*, session: AsyncSession, spec_hash: str) -> Run | None:
    """Return the oldest SUCCEEDED run with this spec hash, if any."""
    row = await session.scalar(
        select(BacktestRow)
        .where(BacktestRow.spec_hash == spec_hash, BacktestRow.state == RunState.SUCCEEDED.value)
        .order_by(BacktestRow.create_time, BacktestRow.id)
        .limit(1)
    )
    return None if row is None else _run(row)


async def get_run(*, session: AsyncSession, run_id: str) -> Run:
    """Return one run or raise NotFound."""
    row = await session.get(BacktestRow, run_id, populate_existing=True)
    if row is None:
        raise NotFound(f"backtests/{run_id} does not exist")
    return _run(row)


async def get_runs(*, session: AsyncSession, run_ids: Sequence[str]) -> dict[str, Run]:
    """Return the runs with these ids, by id."""
    if not run_ids:
        return {}
    rows = await session.scalars(select(BacktestRow).where(BacktestRow.id.in_(list(run_ids))))
    return {row.id: _run(row) for row in rows}


async def list_runs(
    *,
    session: AsyncSession,
    states: Sequence[RunState],
    sweep_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Run]:
    """Return up to `limit` runs newest first, after the keyset position `after`."""
    query = select(BacktestRow)
    if states:
        query = query.where(BacktestRow.state.in_([s.value for s in states]))
    if sweep_id is not None:
        members = select(SweepRunRow.backtest_id).where(SweepRunRow.sweep_id == sweep_id)
        query = query.where(BacktestRow.id.in_(members))
    if after is not None:
        when, last_id = after
        query = query.where(
            or_(
                BacktestRow.create_time < when,
                and_(BacktestRow.create_time == when, BacktestRow.id < last_id),
            )
        )
    query = query.order_by(BacktestRow.create_time.desc(), BacktestRow.id.desc()).limit(limit)
    return [_run(row) for row in await session.scalars(query)]


async def cancel_run(*, session: AsyncSession, run_id: str, now: datetime) -> Run:
    """Mark a QUEUED or RUNNING run CANCELLED (a final run is left as it is) and return it."""
    await session.execute(
        update(BacktestRow)
        .where(
            BacktestRow.id == run_id,
            BacktestRow.state.in_([RunState.QUEUED.value, RunState.RUNNING.value]),
        )
        .values(
            state=RunState.CANCELLED.value,
            end_time=now,
            content_version=final_content_version(run_id, RunState.CANCELLED, None),
        )
    )
    return await get_run(session=session, run_id=run_id)


async def update_progress(
    *, session: AsyncSession, run_id: str, owner: str, progress: Progress, now: datetime
) -> None:
    """Store a running run's progress, only while this owner still holds it."""
    await session.execute(
        update(BacktestRow)
        .where(
            BacktestRow.id == run_id,
            BacktestRow.owner == owner,
            BacktestRow.state == RunState.RUNNING.value,
        )
        .values(progress_json=progress.to_json(), heartbeat_time=now)
    )


async def heartbeat(
    *, session: AsyncSession, owner: str, run_ids: Sequence[str], now: datetime
) -> None:
    """Renew this owner's lease on the runs it is executing."""
    if not run_ids:
        return
    await session.execute(
        update(BacktestRow)
        .where(
            BacktestRow.id.in_(list(run_ids)),
            BacktestRow.owner == owner,
            BacktestRow.state == RunState.RUNNING.value,
        )
        .values(heartbeat_time=now)
    )


async def still_running(*, session: AsyncSession, owner: str, run_ids: Sequence[str]) -> set[str]:
    """Return which of these runs are still RUNNING under this owner (the rest were cancelled)."""
    if not run_ids:
        return set()
    rows = await session.scalars(
        select(BacktestRow.id).where(
            BacktestRow.id.in_(list(run_ids)),
            BacktestRow.owner == owner,
            BacktestRow.state == RunState.RUNNING.value,
        )
    )
    return set(rows)


async def finish_run(
    *,
    session: AsyncSession,
    run_id: str,
    owner: str,
    state: RunState,
    now: datetime,
    stats: Stats | None = None,
    progress: Progress | None = None,
    error_message: str = "",
    denials: Sequence[Denial] = (),
) -> bool:
    """End a run this owner holds; False when it was cancelled or taken over meanwhile.

    Its live events (run_finished or run_failed, and its order denials) join the transaction.
    """
    stats_json = stats.to_json() if stats is not None else None
    values: dict[str, object] = {
        "state": state.value,
        "end_time": now,
        "stats_json": stats_json,
        "error_message": error_message,
        "content_version": final_content_version(run_id, state, stats_json),
    }
    if progress is not None:
        values["progress_json"] = progress.to_json()
    result = await session.execute(
        update(BacktestRow)
        .where(
            BacktestRow.id == run_id,
            BacktestRow.owner == owner,
            BacktestRow.state == RunState.RUNNING.value,
        )
        .values(**values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await publishing.run_ended(
        session=session,
        run_id=run_id,
        state=state,
        now=now,
        stats=stats,
        error_message=error_message,
        denials=denials,
    )
    return True


async def release_run(
    *,
    session: AsyncSession,
    run_id: str,
    owner: str | None,
    reason: str,
    max_attempts: int,
    now: datetime,
    count_attempt: bool = True,
) -> RunState | None:
    """Re-queue a RUNNING run whose worker is gone, or fail it once it used its attempts.

    `count_attempt=False` (a graceful shutdown) gives the attempt back.
    """
    row = await session.get(BacktestRow, run_id, populate_existing=True)
    if row is None or row.state != RunState.RUNNING.value:
        return None
    if owner is not None and row.owner != owner:
        return None
    if not count_attempt or row.attempts < max_attempts:
        state = RunState.QUEUED
        attempts = row.attempts if count_attempt else max(row.attempts - 1, 0)
        values: dict[str, object] = {
            "state": state.value,
            "attempts": attempts,
            "owner": None,
            "heartbeat_time": None,
            "progress_json": None,
            "content_version": running_content_version(run_id, state, attempts),
            "error_message": f"re-queued: {reason}",
        }
    else:
        state = RunState.FAILED
        message = f"{reason} (after {row.attempts} attempts)"
        values = {
            "state": state.value,
            "end_time": now,
            "error_message": message,
            "content_version": final_content_version(run_id, state, None),
        }
    condition = [BacktestRow.id == run_id, BacktestRow.state == RunState.RUNNING.value]
    if owner is not None:
        condition.append(BacktestRow.owner == owner)
    result = await session.execute(update(BacktestRow).where(*condition).values(**values))
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    if state is RunState.FAILED:
        await publishing.run_ended(
            session=session, run_id=run_id, state=state, now=now, error_message=message
        )
    return state


async def stale_runs(*, session: AsyncSession, lease_expired_before: datetime) -> list[str]:
    """Return RUNNING runs whose owner stopped renewing its lease (a dead service or host)."""
    rows = await session.scalars(
        select(BacktestRow.id).where(
            BacktestRow.state == RunState.RUNNING.value,
            or_(
                BacktestRow.heartbeat_time.is_(None),
                BacktestRow.heartbeat_time < lease_expired_before,
            ),
        )
    )
    return list(rows)


async def running_owners(*, session: AsyncSession) -> list[tuple[str, str | None]]:
    """Return every RUNNING run with its owner."""
    rows = await session.execute(
        select(BacktestRow.id, BacktestRow.owner).where(BacktestRow.state == RunState.RUNNING.value)
    )
    return [(run_id, owner) for run_id, owner in rows]


# --- sweeps ---


@dataclass(frozen=True)
class SweepMember:
    """A grid point and the run that holds its result."""

    position: int
    parameters: dict[str, object]
    run: Run


def _sweep(row: SweepRow, members: list[SweepMember]) -> Sweep:
    return Sweep(
        id=row.id,
        base_spec=RunSpec.from_json(row.base_spec_json),
        axes=[Axis(name=a["name"], values=list(a["values"])) for a in json.loads(row.axes_json)],
        metric=SweepMetric(row.metric),
        state=SweepState(row.state),
        total_runs=row.total_runs,
        create_time=row.create_time,
        end_time=row.end_time,
        points=[
            SweepPoint(position=m.position, parameters=dict(m.parameters), run=m.run)
            for m in members
        ],
    )


async def insert_sweep(
    *,
    session: AsyncSession,
    sweep_id: str,
    base_spec: RunSpec,
    axes: Sequence[Axis],
    metric: SweepMetric,
    create_time: datetime,
    points: Sequence[tuple[dict[str, object], str]],
) -> None:
    """Store a sweep and its grid points (each naming the run that holds its result)."""
    session.add(
        SweepRow(
            id=sweep_id,
            base_spec_json=base_spec.to_json(),
            axes_json=json.dumps([{"name": a.name, "values": a.values} for a in axes]),
            metric=metric.value,
            state=SweepState.RUNNING.value,
            total_runs=len(points),
            create_time=create_time,
            end_time=None,
        )
    )
    await session.flush()
    session.add_all(
        SweepRunRow(
            sweep_id=sweep_id,
            position=position,
            backtest_id=run_id,
            parameters_json=json.dumps(parameters, sort_keys=True),
        )
        for position, (parameters, run_id) in enumerate(points)
    )


async def get_sweep(*, session: AsyncSession, sweep_id: str, with_points: bool = True) -> Sweep:
    """Return a sweep with its points' runs, or raise NotFound."""
    row = await session.get(SweepRow, sweep_id, populate_existing=True)
    if row is None:
        raise NotFound(f"sweeps/{sweep_id} does not exist")
    members: list[SweepMember] = []
    if with_points:
        result = await session.execute(
            select(SweepRunRow, BacktestRow)
            .join(BacktestRow, BacktestRow.id == SweepRunRow.backtest_id)
            .where(SweepRunRow.sweep_id == sweep_id)
            .order_by(SweepRunRow.position)
        )
        members = [
            SweepMember(point.position, json.loads(point.parameters_json), _run(run))
            for point, run in result
        ]
    return _sweep(row, members)


async def list_sweeps(
    *, session: AsyncSession, after: tuple[datetime, str] | None, limit: int
) -> list[Sweep]:
    """Return up to `limit` sweeps newest first (without their points)."""
    query = select(SweepRow)
    if after is not None:
        when, last_id = after
        query = query.where(
            or_(
                SweepRow.create_time < when,
                and_(SweepRow.create_time == when, SweepRow.id < last_id),
            )
        )
    query = query.order_by(SweepRow.create_time.desc(), SweepRow.id.desc()).limit(limit)
    sweeps = [_sweep(row, []) for row in await session.scalars(query)]
    if not sweeps:
        return sweeps
    finished = await session.execute(
        select(SweepRunRow.sweep_id, func.count())
        .join(BacktestRow, BacktestRow.id == SweepRunRow.backtest_id)
        .where(
            SweepRunRow.sweep_id.in_([sweep.id for sweep in sweeps]),
            BacktestRow.state.in_([s.value for s in RunState if s.is_final]),
        )
        .group_by(SweepRunRow.sweep_id)
    )
    counts = {sweep_id: int(count) for sweep_id, count in finished}
    for sweep in sweeps:
        sweep.finished_count = counts.get(sweep.id, 0)
        if sweep.state is SweepState.RUNNING and sweep.finished_count == sweep.total_runs:
            sweep.state = SweepState.SUCCEEDED  # stored on its next GetSweep or WatchSweep
    return sweeps


async def finish_sweep(*, session: AsyncSession, sweep_id: str, now: datetime) -> None:
    """Mark a RUNNING sweep SUCCEEDED (called once every point's run is final)."""
    await session.execute(
        update(SweepRow)
        .where(SweepRow.id == sweep_id, SweepRow.state == SweepState.RUNNING.value)
        .values(state=SweepState.SUCCEEDED.value, end_time=now)
    )
