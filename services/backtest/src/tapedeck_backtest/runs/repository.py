"""All SQL for runs, the run queue and sweeps: AsyncSession in, domain objects out.

The queue is the QUEUED rows, claimed atomically by one owner each. PostgreSQL: `SELECT ... FOR
UPDATE SKIP LOCKED` lets several service replicas claim concurrently without waiting on each
other. SQLite has one writer at a time: a conditional UPDATE (`WHERE state = 'QUEUED'`) that only
one claimer can win.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck_backtest.keyset_repository import newest_first
from tapedeck_backtest.keysets import Keyset
from tapedeck_backtest.models import (
    BacktestRow,
    DatasetRow,
    SweepRow,
    SweepRunRow,
    WalkForwardFoldRow,
    WalkForwardRow,
    as_utc,
)
from tapedeck_backtest.runs.domain import (
    FINAL_STATES,
    Release,
    Run,
    RunFacts,
    RunProgress,
    RunSpec,
    RunState,
    Stats,
    final_content_version,
    running_content_version,
)
from tapedeck_backtest.runs.sweeps import (
    Axis,
    ParameterRange,
    Sweep,
    SweepMetric,
    SweepPoint,
    SweepState,
    finished,
    search_from_json,
    search_to_json,
)
from tapedeck_backtest.runs.walkforward import (
    Fold,
    FoldWindow,
    WalkForward,
    WalkForwardSpec,
    WalkForwardState,
)
from tapedeck_common.errors import NotFound
from tapedeck_common.notify_repository import announce

_FINAL = [state.value for state in FINAL_STATES]

# The worker pools of every replica LISTEN here (PostgreSQL; on SQLite, which one process owns,
# the service wakes its own pool).
QUEUE_CHANNEL = "tapedeck_backtest_queue"


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def _run(row: BacktestRow) -> Run:
    return Run(
        id=row.id,
        spec=RunSpec.from_json(row.spec_json),
        spec_hash=row.spec_hash,
        state=RunState(row.state),
        create_time=as_utc(row.create_time),
        content_version=row.content_version,
        sweep_id=row.sweep_id,
        progress=RunProgress.from_json(row.progress_json),
        stats=Stats.from_json(row.stats_json) if row.stats_json else None,
        error_message=row.error_message,
        attempts=row.attempts,
        start_time=_utc_or_none(row.start_time),
        end_time=_utc_or_none(row.end_time),
    )


async def insert_run(*, session: AsyncSession, run: Run) -> None:
    """Store a new run: QUEUED, or (a search's refused trial) already FAILED."""
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
            error_message=run.error_message,
            attempts=0,
            owner=None,
            heartbeat_time=None,
            content_version=run.content_version,
            create_time=run.create_time,
            end_time=run.end_time,
        )
    )
    await announce(session, QUEUE_CHANNEL)


async def hold_spec(*, session: AsyncSession, spec_hash: str) -> None:
    """Make creations of runs with this spec wait for each other until the transaction ends."""
    if session.get_bind().dialect.name == "sqlite":
        # Only reads came before (the driver opens no transaction for them): take the write
        # lock now, so the look-up that follows sees every run committed before it.
        await session.execute(text("BEGIN IMMEDIATE"))
    else:
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(spec_hash))))


async def find_reusable(*, session: AsyncSession, spec_hash: str) -> Run | None:
    """Return the run a new one with this spec would repeat: SUCCEEDED, else QUEUED or RUNNING."""
    row = await session.scalar(
        select(BacktestRow)
        .where(
            BacktestRow.spec_hash == spec_hash,
            BacktestRow.state.in_(
                (RunState.SUCCEEDED.value, RunState.QUEUED.value, RunState.RUNNING.value)
            ),
        )
        .order_by(
            case((BacktestRow.state == RunState.SUCCEEDED.value, 0), else_=1),
            BacktestRow.create_time,
            BacktestRow.id,
        )
        .limit(1)
    )
    return None if row is None else _run(row)


async def find_succeeded(*, session: AsyncSession, spec_hash: str) -> Run | None:
    """Return the oldest SUCCEEDED run with this spec hash, if any."""
    row = await session.scalar(
        select(BacktestRow)
        .where(BacktestRow.spec_hash == spec_hash, BacktestRow.state == RunState.SUCCEEDED.value)
        .order_by(BacktestRow.create_time, BacktestRow.id)
        .limit(1)
    )
    return None if row is None else _run(row)


async def count_by_state(*, session: AsyncSession) -> dict[RunState, int]:
    """Return how many runs are in each state (states without runs count 0)."""
    result = await session.execute(
        select(BacktestRow.state, func.count()).group_by(BacktestRow.state)
    )
    counts = dict.fromkeys(RunState, 0)
    for state, count in result:
        counts[RunState(state)] = int(count)
    return counts


async def get_run(*, session: AsyncSession, run_id: str) -> Run:
    """Return one run or raise NotFound."""
    row = await session.get(BacktestRow, run_id, populate_existing=True)
    if row is None:
        raise NotFound(f"backtests/{run_id} does not exist")
    return _run(row)


async def list_runs(
    *,
    session: AsyncSession,
    states: Sequence[RunState],
    sweep_id: str | None,
    after: Keyset | None,
    limit: int,
) -> list[Run]:
    """Return up to `limit` runs newest first, after the keyset position `after`."""
    query = select(BacktestRow)
    if states:
        query = query.where(BacktestRow.state.in_([s.value for s in states]))
    if sweep_id is not None:
        members = select(SweepRunRow.backtest_id).where(SweepRunRow.sweep_id == sweep_id)
        query = query.where(BacktestRow.id.in_(members))
    query = newest_first(
        query, created=BacktestRow.create_time, row_id=BacktestRow.id, after=after, limit=limit
    )
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


async def run_facts(*, session: AsyncSession, run_id: str) -> RunFacts:
    """Return a run's spec, its dataset's instrument and its sweep."""
    row = (
        await session.execute(
            select(BacktestRow.spec_json, DatasetRow.instrument_id, BacktestRow.sweep_id)
            .join(DatasetRow, DatasetRow.id == BacktestRow.dataset_id, isouter=True)
            .where(BacktestRow.id == run_id)
        )
    ).one()
    return RunFacts(RunSpec.from_json(row.spec_json), row.instrument_id or "", row.sweep_id)


# --- the queue ---


async def claim_next(
    *, session: AsyncSession, owner: str, now: datetime, postgres: bool
) -> tuple[str, int] | None:
    """Move the oldest QUEUED run to RUNNING under `owner`; return its id and attempt, or None."""
    candidates = (
        select(BacktestRow.id, BacktestRow.attempts)
        .where(BacktestRow.state == RunState.QUEUED.value)
        .order_by(BacktestRow.create_time, BacktestRow.id)
        .limit(1 if postgres else 8)
    )
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    for run_id, attempts in await session.execute(candidates):
        attempt = attempts + 1
        result = await session.execute(
            update(BacktestRow)
            .where(BacktestRow.id == run_id, BacktestRow.state == RunState.QUEUED.value)
            .values(
                state=RunState.RUNNING.value,
                owner=owner,
                attempts=attempt,
                start_time=now,
                heartbeat_time=now,
                progress_json=None,
                content_version=running_content_version(RunState.RUNNING, attempt),
            )
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return run_id, attempt
    return None


async def update_progress(
    *, session: AsyncSession, run_id: str, owner: str, progress: RunProgress, now: datetime
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
    progress: RunProgress | None = None,
    error_message: str = "",
) -> bool:
    """End a run this owner holds; False when it was cancelled or taken over meanwhile."""
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
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def running_attempts(*, session: AsyncSession, run_id: str, owner: str | None) -> int | None:
    """Return the attempts of a RUNNING run (held by `owner` unless None), or None."""
    row = await session.get(BacktestRow, run_id, populate_existing=True)
    if row is None or row.state != RunState.RUNNING.value:
        return None
    if owner is not None and row.owner != owner:
        return None
    return row.attempts


async def release_run(
    *, session: AsyncSession, run_id: str, owner: str | None, outcome: Release, now: datetime
) -> bool:
    """Store a release of a RUNNING run (re-queued or failed); False if it changed meanwhile."""
    values: dict[str, object]
    if outcome.state is RunState.QUEUED:
        values = {
            "state": outcome.state.value,
            "attempts": outcome.attempts,
            "owner": None,
            "heartbeat_time": None,
            "progress_json": None,
            "content_version": running_content_version(outcome.state, outcome.attempts),
            "error_message": outcome.error_message,
        }
    else:
        values = {
            "state": outcome.state.value,
            "end_time": now,
            "error_message": outcome.error_message,
            "content_version": final_content_version(run_id, outcome.state, None),
        }
    condition = [BacktestRow.id == run_id, BacktestRow.state == RunState.RUNNING.value]
    if owner is not None:
        condition.append(BacktestRow.owner == owner)
    result = await session.execute(update(BacktestRow).where(*condition).values(**values))
    if outcome.state is RunState.QUEUED:
        await announce(session, QUEUE_CHANNEL)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def orphan_candidates(
    *, session: AsyncSession, lease_expired_before: datetime
) -> list[tuple[str, str | None, RunState, bool]]:
    """Return every QUEUED or RUNNING run with its owner, state and whether its lease expired."""
    rows = await session.execute(
        select(
            BacktestRow.id,
            BacktestRow.owner,
            BacktestRow.state,
            or_(
                BacktestRow.heartbeat_time.is_(None),
                BacktestRow.heartbeat_time < lease_expired_before,
            ),
        ).where(BacktestRow.state.in_([RunState.QUEUED.value, RunState.RUNNING.value]))
    )
    return [
        (run_id, owner, RunState(state), bool(expired)) for run_id, owner, state, expired in rows
    ]


# --- sweeps ---


def _sweep(
    row: SweepRow,
    *,
    points: tuple[SweepPoint, ...] = (),
    finished_runs: int,
    last_end_time: datetime | None,
) -> Sweep:
    return Sweep(
        id=row.id,
        base_spec=RunSpec.from_json(row.base_spec_json),
        axes=tuple(_axis(a) for a in json.loads(row.axes_json)),
        metric=SweepMetric(row.metric),
        state=SweepState(row.state),
        total_runs=row.total_runs,
        create_time=as_utc(row.create_time),
        end_time=_utc_or_none(row.end_time),
        points=points,
        finished_runs=finished_runs,
        last_end_time=last_end_time,
        search=None if row.search_json is None else search_from_json(row.search_json),
    )


def _axis(raw: dict[str, Any]) -> Axis:
    span = raw.get("range")
    return Axis(
        name=raw["name"],
        values=tuple(raw["values"]),
        range=None if span is None else ParameterRange(**span),
    )


def _axis_json(axis: Axis) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": axis.name, "values": list(axis.values)}
    if axis.range is not None:
        raw["range"] = asdict(axis.range)
    return raw


def _point_row(sweep_id: str, point: SweepPoint) -> SweepRunRow:
    return SweepRunRow(
        sweep_id=sweep_id,
        position=point.position,
        backtest_id=point.run.id,
        parameters_json=json.dumps(point.parameters, sort_keys=True),
        trial_attrs_json=point.trial_attrs,
    )


async def insert_sweep(*, session: AsyncSession, sweep: Sweep) -> None:
    """Store a new sweep and its grid points (each naming the run that holds its result)."""
    session.add(
        SweepRow(
            id=sweep.id,
            base_spec_json=sweep.base_spec.to_json(),
            axes_json=json.dumps([_axis_json(a) for a in sweep.axes]),
            metric=sweep.metric.value,
            state=sweep.state.value,
            total_runs=sweep.total_runs,
            create_time=sweep.create_time,
            end_time=sweep.end_time,
            search_json=None if sweep.search is None else search_to_json(sweep.search),
        )
    )
    await session.flush()
    session.add_all(_point_row(sweep.id, point) for point in sweep.points)


async def insert_sweep_point(*, session: AsyncSession, sweep_id: str, point: SweepPoint) -> None:
    """Store a search's new trial (the transaction fails if another process took its position)."""
    session.add(_point_row(sweep_id, point))
    await session.flush()


async def get_sweep(*, session: AsyncSession, sweep_id: str) -> Sweep:
    """Return a sweep with its points' runs, or raise NotFound."""
    row = await session.get(SweepRow, sweep_id, populate_existing=True)
    if row is None:
        raise NotFound(f"sweeps/{sweep_id} does not exist")
    result = await session.execute(
        select(SweepRunRow, BacktestRow)
        .join(BacktestRow, BacktestRow.id == SweepRunRow.backtest_id)
        .where(SweepRunRow.sweep_id == sweep_id)
        .order_by(SweepRunRow.position)
    )
    return _sweep_with_points(row, tuple(_point(point, run) for point, run in result))


def _point(point: SweepRunRow, run: BacktestRow) -> SweepPoint:
    return SweepPoint(
        point.position, json.loads(point.parameters_json), _run(run), point.trial_attrs_json
    )


def _sweep_with_points(row: SweepRow, points: tuple[SweepPoint, ...]) -> Sweep:
    count, last_end = finished(points)
    return _sweep(row, points=points, finished_runs=count, last_end_time=last_end)


async def list_sweeps(*, session: AsyncSession, after: Keyset | None, limit: int) -> list[Sweep]:
    """Return up to `limit` sweeps newest first (without their points, with their counts)."""
    query = newest_first(
        select(SweepRow), created=SweepRow.create_time, row_id=SweepRow.id, after=after, limit=limit
    )
    rows = list(await session.scalars(query))
    if not rows:
        return []
    finished_runs = await session.execute(
        select(SweepRunRow.sweep_id, func.count(), func.max(BacktestRow.end_time))
        .join(BacktestRow, BacktestRow.id == SweepRunRow.backtest_id)
        .where(SweepRunRow.sweep_id.in_([row.id for row in rows]), BacktestRow.state.in_(_FINAL))
        .group_by(SweepRunRow.sweep_id)
    )
    counts = {sweep_id: (int(count), last) for sweep_id, count, last in finished_runs}
    sweeps = []
    for row in rows:
        count, last_end = counts.get(row.id, (0, None))
        sweeps.append(_sweep(row, finished_runs=count, last_end_time=_utc_or_none(last_end)))
    return sweeps


async def running_searches(*, session: AsyncSession) -> list[str]:
    """Return the ids of the searches still RUNNING."""
    query = select(SweepRow.id).where(
        SweepRow.state == SweepState.RUNNING.value, SweepRow.search_json.is_not(None)
    )
    return list(await session.scalars(query))


async def finish_sweep(*, session: AsyncSession, sweep: Sweep) -> None:
    """Store a sweep's move from RUNNING to its final state."""
    await session.execute(
        update(SweepRow)
        .where(SweepRow.id == sweep.id, SweepRow.state == SweepState.RUNNING.value)
        .values(state=sweep.state.value, end_time=sweep.end_time)
    )


# --- walk-forwards ---


def _walk_spec_json(spec: WalkForwardSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


async def insert_walk_forward(*, session: AsyncSession, walk: WalkForward) -> None:
    """Store a new walk-forward and its folds (each naming its in-sample sweep)."""
    session.add(
        WalkForwardRow(
            id=walk.id,
            base_spec_json=walk.base_spec.to_json(),
            spec_json=_walk_spec_json(walk.spec),
            metric=walk.metric.value,
            state=walk.state.value,
            create_time=walk.create_time,
            end_time=walk.end_time,
        )
    )
    await session.flush()
    session.add_all(
        WalkForwardFoldRow(
            walk_forward_id=walk.id,
            fold=fold.window.index,
            in_start_ns=fold.window.in_start_ns,
            in_end_ns=fold.window.in_end_ns,
            out_start_ns=fold.window.out_start_ns,
            out_end_ns=fold.window.out_end_ns,
            sweep_id=fold.sweep.id,
            out_run_id=None,
            error="",
        )
        for fold in walk.folds
    )


async def get_walk_forward(*, session: AsyncSession, walk_id: str) -> WalkForward:
    """Return a walk-forward with its folds' sweeps and runs; or NotFound."""
    row = await session.get(WalkForwardRow, walk_id, populate_existing=True)
    if row is None:
        raise NotFound(f"walkForwards/{walk_id} does not exist")
    (walk,) = await _walk_forwards(session, [row])
    return walk


async def list_walk_forwards(
    *, session: AsyncSession, after: Keyset | None, limit: int
) -> list[WalkForward]:
    """Return up to `limit` walk-forwards newest first, with their folds' sweeps and runs."""
    query = newest_first(
        select(WalkForwardRow),
        created=WalkForwardRow.create_time,
        row_id=WalkForwardRow.id,
        after=after,
        limit=limit,
    )
    rows = list(await session.scalars(query.execution_options(populate_existing=True)))
    return await _walk_forwards(session, rows) if rows else []


async def _walk_forwards(session: AsyncSession, rows: list[WalkForwardRow]) -> list[WalkForward]:
    # Four statements for any number of walk-forwards: their folds, the folds' sweeps, the
    # sweeps' points with their runs, and the out-of-sample runs (each joined through the folds,
    # so no statement binds more than one parameter per walk-forward).
    of_page = WalkForwardFoldRow.walk_forward_id.in_([row.id for row in rows])
    fold_rows = list(
        await session.scalars(
            select(WalkForwardFoldRow).where(of_page).order_by(WalkForwardFoldRow.fold)
        )
    )
    sweep_rows = await session.scalars(
        select(SweepRow)
        .join(WalkForwardFoldRow, WalkForwardFoldRow.sweep_id == SweepRow.id)
        .where(of_page)
        .execution_options(populate_existing=True)
    )
    points: dict[str, list[SweepPoint]] = {}
    for point, run in await session.execute(
        select(SweepRunRow, BacktestRow)
        .join(BacktestRow, BacktestRow.id == SweepRunRow.backtest_id)
        .join(WalkForwardFoldRow, WalkForwardFoldRow.sweep_id == SweepRunRow.sweep_id)
        .where(of_page)
        .order_by(SweepRunRow.position)
    ):
        points.setdefault(point.sweep_id, []).append(_point(point, run))
    sweeps = {row.id: _sweep_with_points(row, tuple(points.get(row.id, ()))) for row in sweep_rows}
    out_runs = {
        run.id: _run(run)
        for run in await session.scalars(
            select(BacktestRow)
            .join(WalkForwardFoldRow, WalkForwardFoldRow.out_run_id == BacktestRow.id)
            .where(of_page)
        )
    }
    folds: dict[str, list[Fold]] = {}
    for fold in fold_rows:
        window = FoldWindow(
            fold.fold, fold.in_start_ns, fold.in_end_ns, fold.out_start_ns, fold.out_end_ns
        )
        out_run = None if fold.out_run_id is None else out_runs[fold.out_run_id]
        folds.setdefault(fold.walk_forward_id, []).append(
            Fold(window, sweeps[fold.sweep_id], out_run, fold.error)
        )
    return [
        WalkForward(
            id=row.id,
            spec=WalkForwardSpec(**json.loads(row.spec_json)),
            base_spec=RunSpec.from_json(row.base_spec_json),
            metric=SweepMetric(row.metric),
            state=WalkForwardState(row.state),
            create_time=as_utc(row.create_time),
            folds=tuple(folds.get(row.id, ())),
            end_time=_utc_or_none(row.end_time),
        )
        for row in rows
    ]


async def set_fold_outcome(
    *, session: AsyncSession, walk_id: str, fold: int, out_run_id: str | None, error: str = ""
) -> None:
    """Store a fold's out-of-sample run, or why it has none."""
    await session.execute(
        update(WalkForwardFoldRow)
        .where(WalkForwardFoldRow.walk_forward_id == walk_id, WalkForwardFoldRow.fold == fold)
        .values(out_run_id=out_run_id, error=error)
    )


async def finish_walk_forward(*, session: AsyncSession, walk: WalkForward) -> None:
    """Store a walk-forward's move from RUNNING to its final state."""
    await session.execute(
        update(WalkForwardRow)
        .where(WalkForwardRow.id == walk.id, WalkForwardRow.state == WalkForwardState.RUNNING.value)
        .values(state=walk.state.value, end_time=walk.end_time)
    )


async def running_walk_forwards(*, session: AsyncSession) -> list[str]:
    """Return the ids of the walk-forwards still RUNNING."""
    query = select(WalkForwardRow.id).where(WalkForwardRow.state == WalkForwardState.RUNNING.value)
    return list(await session.scalars(query))
