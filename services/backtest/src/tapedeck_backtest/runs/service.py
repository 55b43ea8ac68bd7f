"""Runs and sweeps, the application: resolve specs, store, reuse finished runs, cancel, watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_backtest.datasets.service import load_dataset_source
from tapedeck_backtest.keysets import Keyset
from tapedeck_backtest.runs import repository
from tapedeck_backtest.runs.domain import (
    Run,
    RunState,
    SpecRequest,
    new_run,
    resolve_spec,
    spec_hash,
)
from tapedeck_backtest.runs.engine import DEFAULT_IN_MEMORY_ROWS, RunJob
from tapedeck_backtest.runs.sweeps import (
    Axis,
    Sweep,
    SweepMetric,
    SweepPoint,
    SweepState,
    check_axes,
    finished,
    point_specs,
    ranked,
    settle,
)
from tapedeck_backtest.strategies import StrategyRegistry
from tapedeck_common.validation import new_id

WATCH_POLL_SECONDS = 0.2


def _now() -> datetime:
    return datetime.now(UTC)


class Runs:
    """The runs and sweeps application layer.

    `wake` tells this process's worker pool that the queue changed (None: no pool here; another
    replica's pool finds the run at its next poll).
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog_dir: Path,
        registry: StrategyRegistry,
        wake: Callable[[], None] | None,
    ) -> None:
        self._sessions = sessions
        self._catalog_dir = catalog_dir
        self._registry = registry
        self._wake = wake

    def _queue_changed(self) -> None:
        if self._wake is not None:
            self._wake()

    # -- runs

    async def create(self, request: SpecRequest) -> tuple[Run, bool]:
        """Store a QUEUED run, or return the run with the same spec (cached): done, queued or running."""
        async with self._sessions.begin() as session:
            source = await load_dataset_source(
                session=session, catalog_dir=self._catalog_dir, dataset_id=request.dataset_id
            )
            spec = resolve_spec(request, source, self._registry, field="spec")
            digest = spec_hash(spec, data_identity=source.identity)
            await repository.hold_spec(session=session, spec_hash=digest)
            cached = await repository.find_reusable(session=session, spec_hash=digest)
            if cached is not None:
                return cached, True
            run = new_run(new_id(), spec, digest, sweep_id=None, now=_now())
            await repository.insert_run(session=session, run=run)
        self._queue_changed()
        return run, False

    async def get(self, run_id: str) -> Run:
        """Return one run."""
        async with self._sessions() as session:
            return await repository.get_run(session=session, run_id=run_id)

    async def page(
        self,
        *,
        states: Sequence[RunState],
        sweep_id: str | None,
        after: Keyset | None,
        limit: int,
    ) -> list[Run]:
        """Return up to `limit` runs newest first, after the keyset position `after`."""
        async with self._sessions() as session:
            return await repository.list_runs(
                session=session, states=states, sweep_id=sweep_id, after=after, limit=limit
            )

    async def cancel(self, run_id: str) -> Run:
        """Cancel a queued or running run; a final run is returned unchanged."""
        async with self._sessions.begin() as session:
            run = await repository.cancel_run(session=session, run_id=run_id, now=_now())
        self._queue_changed()
        return run

    async def watch(self, run_id: str) -> AsyncIterator[Run]:
        """Yield the run whenever it changes, ending after a final state."""
        last: tuple[object, ...] | None = None
        while True:
            run = await self.get(run_id)
            key = (run.state, run.progress, run.content_version, run.error_message)
            if key != last:
                last = key
                yield run
            if run.state.is_final:
                return
            await asyncio.sleep(WATCH_POLL_SECONDS)

    # -- sweeps

    async def create_sweep(
        self, request: SpecRequest, axes: tuple[Axis, ...], metric: SweepMetric
    ) -> Sweep:
        """Store a sweep and one run per grid point (reusing SUCCEEDED runs with equal specs)."""
        check_axes(axes, self._registry, request.strategy_id)
        sweep_id = new_id()
        now = _now()
        async with self._sessions.begin() as session:
            source = await load_dataset_source(
                session=session,
                catalog_dir=self._catalog_dir,
                dataset_id=request.dataset_id,
                field="base_spec.dataset",
            )
            base = resolve_spec(request, source, self._registry, field="base_spec")
            points: list[SweepPoint] = []
            by_hash: dict[str, Run] = {}
            for position, (parameters, spec) in enumerate(
                point_specs(base, request.parameters, axes, self._registry)
            ):
                digest = spec_hash(spec, data_identity=source.identity)
                run = by_hash.get(digest)
                if run is None:
                    run = await repository.find_succeeded(session=session, spec_hash=digest)
                if run is None:
                    run = new_run(new_id(), spec, digest, sweep_id=sweep_id, now=now)
                    await repository.insert_run(session=session, run=run)
                by_hash[digest] = run
                points.append(SweepPoint(position, parameters, run))
            count, last_end = finished(tuple(points))
            sweep = settle(
                Sweep(
                    id=sweep_id,
                    base_spec=base,
                    axes=axes,
                    metric=metric,
                    state=SweepState.RUNNING,
                    total_runs=len(points),
                    create_time=now,
                    points=tuple(points),
                    finished_runs=count,
                    last_end_time=last_end,
                ),
                now=now,
            )
            await repository.insert_sweep(
                session=session, sweep=sweep, run_ids=[p.run.id for p in points]
            )
        self._queue_changed()
        return sweep

    async def get_sweep(self, sweep_id: str) -> Sweep:
        """Return a sweep with its points; one whose runs are all final is stored SUCCEEDED."""
        async with self._sessions.begin() as session:
            sweep = await repository.get_sweep(session=session, sweep_id=sweep_id)
            return (await _settled(session, [sweep]))[0]

    async def page_sweeps(self, *, after: Keyset | None, limit: int) -> list[Sweep]:
        """Return up to `limit` sweeps newest first, without their points."""
        async with self._sessions.begin() as session:
            sweeps = await repository.list_sweeps(session=session, after=after, limit=limit)
            return await _settled(session, sweeps)

    async def watch_sweep(self, sweep_id: str) -> AsyncIterator[tuple[SweepPoint, int] | Sweep]:
        """Yield each point (with its rank so far) as its run ends, then the final sweep."""
        reported: set[int] = set()
        while True:
            sweep = await self.get_sweep(sweep_id)
            done = tuple(p for p in sweep.points if p.run.state.is_final)
            ranks = {point.position: rank for point, rank in ranked(done, sweep.metric)}
            for point in done:
                if point.position not in reported:
                    reported.add(point.position)
                    yield point, ranks[point.position]
            if sweep.state is not SweepState.RUNNING:
                yield sweep
                return
            await asyncio.sleep(WATCH_POLL_SECONDS)


async def _settled(session: AsyncSession, sweeps: list[Sweep]) -> list[Sweep]:
    """Return the sweeps settled now, storing each that just became final."""
    now = _now()
    result = []
    for sweep in sweeps:
        after = settle(sweep, now=now)
        if after.state is not sweep.state:
            await repository.finish_sweep(session=session, sweep=after)
        result.append(after)
    return result


class RunJobs:
    """What a worker needs to execute a run: its dataset in the catalog, its results directory."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog_dir: Path,
        results_root: Path,
        in_memory_rows: int = DEFAULT_IN_MEMORY_ROWS,
    ) -> None:
        self._sessions = sessions
        self._catalog_dir = catalog_dir
        self._results_root = results_root
        self._in_memory_rows = in_memory_rows

    async def job_for(self, run: Run) -> RunJob:
        """Return the job of a claimed run."""
        async with self._sessions() as session:
            source = await load_dataset_source(
                session=session, catalog_dir=self._catalog_dir, dataset_id=run.spec.dataset_id
            )
        return RunJob(
            run_id=run.id,
            source=source,
            spec=run.spec,
            results_dir=self._results_root / run.id,
            in_memory_rows=self._in_memory_rows,
        )
