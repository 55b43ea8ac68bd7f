"""Runs and sweeps, the application: resolve specs, store, reuse finished runs, cancel, watch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_backtest import storage
from tapedeck_backtest.datasets.domain import DatasetSource
from tapedeck_backtest.datasets.service import load_dataset_source
from tapedeck_backtest.keysets import Keyset
from tapedeck_backtest.runs import repository
from tapedeck_backtest.runs.domain import (
    Run,
    RunSpec,
    RunState,
    SpecRequest,
    new_run,
    refused_run,
    resolve_spec,
    spec_hash,
)
from tapedeck_backtest.runs.engine import DEFAULT_IN_MEMORY_ROWS, RunJob
from tapedeck_backtest.runs.search import ask, check_search, search_space
from tapedeck_backtest.runs.sweeps import (
    Axis,
    SearchAlgorithm,
    SearchSpec,
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
from tapedeck_backtest.runs.walkforward import (
    Fold,
    WalkForward,
    WalkForwardSpec,
    WalkForwardState,
    check_walk_forward,
    fold_windows,
    settle_walk_forward,
)
from tapedeck_backtest.strategies import StrategyRegistry
from tapedeck_backtest.strategies.registry import Scalar
from tapedeck_common.errors import InvalidArgument
from tapedeck_common.validation import new_id

logger = logging.getLogger(__name__)

WATCH_POLL_SECONDS = 0.2
# How often a running search or walk-forward looks for finished runs to take the next step.
DRIVE_POLL_SECONDS = 0.5


def _now() -> datetime:
    return datetime.now(UTC)


class Runs:
    """The runs and sweeps application layer.

    `wake` tells this process's worker pools that the queue changed (pools of other replicas hear
    of it through NOTIFY on PostgreSQL; a SQLite database belongs to one process).
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog_dir: str,
        registry: StrategyRegistry,
        wake: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._catalog_dir = catalog_dir
        self._registry = registry
        self._wake = wake
        self._drivers: dict[str, asyncio.Task[None]] = {}

    def _queue_changed(self) -> None:
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

    def _checked_search(
        self,
        request: SpecRequest,
        axes: tuple[Axis, ...],
        metric: SweepMetric,
        search: SearchSpec | None,
    ) -> SearchSpec | None:
        """Check a sweep's axes (and search); return the search, None for a grid."""
        grid = search is None or search.algorithm is SearchAlgorithm.GRID
        check_axes(axes, self._registry, request.strategy_id, grid=grid)
        if search is None or grid:
            return None
        definition = self._registry.require(request.strategy_id, field="base_spec.strategy")
        search_space(axes, definition)
        return check_search(search, metric)

    async def create_sweep(
        self,
        request: SpecRequest,
        axes: tuple[Axis, ...],
        metric: SweepMetric,
        search: SearchSpec | None = None,
    ) -> Sweep:
        """Store a sweep: a grid with one run per point (reusing SUCCEEDED runs with equal
        specs), or a search whose trials are asked as runs finish (`drive_search`)."""
        search = self._checked_search(request, axes, metric, search)
        async with self._sessions.begin() as session:
            source, base = await self._base_spec(session, request)
            sweep = await self._new_sweep(
                session, base, request.parameters, source.identity, axes, metric, search
            )
        if sweep.search is not None:
            self.drive_search(sweep.id)
        self._queue_changed()
        return sweep

    async def _base_spec(
        self, session: AsyncSession, request: SpecRequest
    ) -> tuple[DatasetSource, RunSpec]:
        """Return a sweep's (or walk-forward's) dataset and its base spec resolved."""
        source = await load_dataset_source(
            session=session,
            catalog_dir=self._catalog_dir,
            dataset_id=request.dataset_id,
            field="base_spec.dataset",
        )
        return source, resolve_spec(request, source, self._registry, field="base_spec")

    async def _new_sweep(
        self,
        session: AsyncSession,
        base: RunSpec,
        parameters: dict[str, Scalar],
        identity: str,
        axes: tuple[Axis, ...],
        metric: SweepMetric,
        search: SearchSpec | None,
    ) -> Sweep:
        """Store a sweep over `base`'s window and, for a grid, one run per point."""
        sweep_id = new_id()
        now = _now()
        points: list[SweepPoint] = []
        if search is None:
            by_hash: dict[str, Run] = {}
            for position, (point, spec) in enumerate(
                point_specs(base, parameters, axes, self._registry)
            ):
                run = await self._point_run(session, spec, identity, sweep_id, by_hash, now)
                points.append(SweepPoint(position, point, run))
        count, last_end = finished(tuple(points))
        sweep = settle(
            Sweep(
                id=sweep_id,
                base_spec=base,
                axes=axes,
                metric=metric,
                state=SweepState.RUNNING,
                total_runs=len(points) if search is None else search.trial_budget,
                create_time=now,
                points=tuple(points),
                finished_runs=count,
                last_end_time=last_end,
                search=search,
            ),
            now=now,
        )
        await repository.insert_sweep(session=session, sweep=sweep)
        return sweep

    async def _point_run(
        self,
        session: AsyncSession,
        spec: RunSpec,
        identity: str,
        sweep_id: str | None,
        by_hash: dict[str, Run],
        now: datetime,
    ) -> Run:
        """Return the run for a point's spec: one this sweep already has, a SUCCEEDED run with
        the same spec, or a new QUEUED run."""
        digest = spec_hash(spec, data_identity=identity)
        run = by_hash.get(digest)
        if run is None:
            run = await repository.find_succeeded(session=session, spec_hash=digest)
        if run is None:
            run = new_run(new_id(), spec, digest, sweep_id=sweep_id, now=now)
            await repository.insert_run(session=session, run=run)
        by_hash[digest] = run
        return run

    # -- searches

    async def resume_drivers(self) -> None:
        """Drive every search and walk-forward left RUNNING (by a restart): each continues
        where it was."""
        async with self._sessions() as session:
            for sweep_id in await repository.running_searches(session=session):
                self.drive_search(sweep_id)
            for walk_id in await repository.running_walk_forwards(session=session):
                self.drive_walk_forward(walk_id)

    def drive_search(self, sweep_id: str) -> None:
        """Ask a search's trials in the background until its budget is spent and run."""
        self._drive_in_background(f"search-{sweep_id}", self.advance_search, sweep_id)

    def _drive_in_background(
        self, name: str, advance: Callable[[str], Awaitable[bool]], resource_id: str
    ) -> None:
        if name not in self._drivers:
            task = asyncio.create_task(self._drive(name, advance, resource_id), name=name)
            self._drivers[name] = task
            task.add_done_callback(lambda _: self._drivers.pop(name, None))

    async def stop_drivers(self) -> None:
        """Stop driving searches and walk-forwards (all their state is stored: a restart
        resumes them)."""
        tasks = list(self._drivers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drive(
        self, name: str, advance: Callable[[str], Awaitable[bool]], resource_id: str
    ) -> None:
        while True:
            try:
                running = await advance(resource_id)
            except IntegrityError:
                running = True  # another replica moved it first: read again
            except Exception:
                logger.exception("%s could not advance", name)
                running = True
            if not running:
                return
            await asyncio.sleep(DRIVE_POLL_SECONDS)

    async def advance_search(self, sweep_id: str) -> bool:
        """Ask as many trials as the search's budget and parallelism allow; settle it when every
        trial is final. Return whether it is still RUNNING."""
        asked = False
        async with self._sessions.begin() as session:
            stored = await repository.get_sweep(session=session, sweep_id=sweep_id)
            sweep = (await _settled(session, [stored]))[0]
            search = sweep.search
            if sweep.state is not SweepState.RUNNING or search is None:
                return False
            source = await load_dataset_source(
                session=session,
                catalog_dir=self._catalog_dir,
                dataset_id=sweep.base_spec.dataset_id,
            )
            definition = self._registry.require(sweep.base_spec.strategy_id)
            space = search_space(sweep.axes, definition)
            points = list(sweep.points)
            by_hash = {p.run.spec_hash: p.run for p in points}
            in_flight = sum(1 for p in points if not p.run.state.is_final)
            now = _now()
            while len(points) < search.trial_budget and in_flight < search.parallel_trials:
                trial = ask(search, space, points)
                run = await self._trial_run(
                    session, sweep, trial.parameters, source.identity, by_hash, now
                )
                point = SweepPoint(len(points), trial.parameters, run, trial.trial_attrs)
                await repository.insert_sweep_point(session=session, sweep_id=sweep_id, point=point)
                points.append(point)
                in_flight += 0 if run.state.is_final else 1
                asked = True
        if asked:
            self._queue_changed()
        return True

    async def _trial_run(
        self,
        session: AsyncSession,
        sweep: Sweep,
        parameters: dict[str, Scalar],
        identity: str,
        by_hash: dict[str, Run],
        now: datetime,
    ) -> Run:
        """Return the run of a trial; parameters the strategy refuses make a FAILED run that
        says why (the sampler learns to avoid them)."""
        base = sweep.base_spec
        try:
            resolved = self._registry.validate(base.strategy_id, {**base.parameters, **parameters})
        except InvalidArgument as error:
            spec = replace(base, parameters={**base.parameters, **parameters})
            refusal = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
            digest = spec_hash(spec, data_identity=identity)
            run = refused_run(new_id(), spec, digest, refusal, sweep_id=sweep.id, now=now)
            await repository.insert_run(session=session, run=run)
            return run
        return await self._point_run(
            session, replace(base, parameters=resolved), identity, sweep.id, by_hash, now
        )

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

    # -- walk-forwards

    async def create_walk_forward(
        self,
        request: SpecRequest,
        axes: tuple[Axis, ...],
        metric: SweepMetric,
        search: SearchSpec | None,
        spec: WalkForwardSpec,
    ) -> WalkForward:
        """Store a walk-forward: one in-sample sweep per fold; the winners run out of sample as
        their sweeps finish (`drive_walk_forward`)."""
        search = self._checked_search(request, axes, metric, search)
        check_walk_forward(spec)
        now = _now()
        async with self._sessions.begin() as session:
            source, base = await self._base_spec(session, request)
            folds = []
            for window in fold_windows(spec, base.start_ns, base.end_ns):
                in_sample = replace(base, start_ns=window.in_start_ns, end_ns=window.in_end_ns)
                sweep = await self._new_sweep(
                    session, in_sample, request.parameters, source.identity, axes, metric, search
                )
                folds.append(Fold(window, sweep))
            walk = WalkForward(
                id=new_id(),
                spec=spec,
                base_spec=base,
                metric=metric,
                state=WalkForwardState.RUNNING,
                create_time=now,
                folds=tuple(folds),
            )
            await repository.insert_walk_forward(session=session, walk=walk)
        for fold in walk.folds:
            if fold.sweep.search is not None:
                self.drive_search(fold.sweep.id)
        self.drive_walk_forward(walk.id)
        self._queue_changed()
        return walk

    async def get_walk_forward(self, walk_id: str) -> WalkForward:
        """Return a walk-forward with its folds (their sweeps settled)."""
        async with self._sessions.begin() as session:
            walk = await repository.get_walk_forward(session=session, walk_id=walk_id)
            return await _settled_folds(session, walk)

    async def page_walk_forwards(self, *, after: Keyset | None, limit: int) -> list[WalkForward]:
        """Return up to `limit` walk-forwards newest first, with their folds (sweeps settled)."""
        async with self._sessions.begin() as session:
            walks = await repository.list_walk_forwards(session=session, after=after, limit=limit)
            return [await _settled_folds(session, walk) for walk in walks]

    def drive_walk_forward(self, walk_id: str) -> None:
        """Run each fold's winner out of sample as its sweep finishes, in the background."""
        self._drive_in_background(f"walk-forward-{walk_id}", self.advance_walk_forward, walk_id)

    async def advance_walk_forward(self, walk_id: str) -> bool:
        """Queue the out-of-sample run of every fold whose sweep just finished; settle the
        walk-forward when every fold is done. Return whether it is still RUNNING."""
        queued = False
        async with self._sessions.begin() as session:
            stored = await repository.get_walk_forward(session=session, walk_id=walk_id)
            base = stored.base_spec
            walk = await _settled_folds(session, stored)
            if walk.state is not WalkForwardState.RUNNING:
                return False
            source = await load_dataset_source(
                session=session, catalog_dir=self._catalog_dir, dataset_id=base.dataset_id
            )
            now = _now()
            for fold in walk.folds:
                if fold.out_run is not None or fold.error or fold.sweep.state is SweepState.RUNNING:
                    continue
                winner = fold.in_sample_run
                if winner is None:
                    await repository.set_fold_outcome(
                        session=session,
                        walk_id=walk_id,
                        fold=fold.window.index,
                        out_run_id=None,
                        error="no run of the in-sample sweep succeeded",
                    )
                    continue
                spec = replace(
                    base,
                    parameters=winner.spec.parameters,
                    start_ns=fold.window.out_start_ns,
                    end_ns=fold.window.out_end_ns,
                )
                run = await self._point_run(session, spec, source.identity, None, {}, now)
                await repository.set_fold_outcome(
                    session=session, walk_id=walk_id, fold=fold.window.index, out_run_id=run.id
                )
                queued = True
            stored = await repository.get_walk_forward(session=session, walk_id=walk_id)
            walk = settle_walk_forward(await _settled_folds(session, stored), now=now)
            if walk.state is not WalkForwardState.RUNNING:
                await repository.finish_walk_forward(session=session, walk=walk)
        if queued:
            self._queue_changed()
        return walk.state is WalkForwardState.RUNNING

    async def watch_sweep(
        self, sweep_id: str
    ) -> AsyncIterator[tuple[tuple[SweepPoint, int], tuple[SweepPoint, int]] | Sweep]:
        """Yield each point (with its rank so far) as its run ends, with the best point
        reported so far, then the final sweep."""
        reported: set[int] = set()
        best: SweepPoint | None = None
        while True:
            sweep = await self.get_sweep(sweep_id)
            done = tuple(p for p in sweep.points if p.run.state.is_final)
            ranks = {point.position: rank for point, rank in ranked(done, sweep.metric)}
            for point in done:
                if point.position not in reported:
                    reported.add(point.position)
                    contenders = (point,) if best is None else (best, point)
                    best = ranked(contenders, sweep.metric)[0][0]
                    yield (point, ranks[point.position]), (best, ranks[best.position])
            if sweep.state is not SweepState.RUNNING:
                yield sweep
                return
            await asyncio.sleep(WATCH_POLL_SECONDS)


async def _settled_folds(session: AsyncSession, walk: WalkForward) -> WalkForward:
    """Return the walk-forward with each fold's sweep settled now."""
    folds = []
    for fold in walk.folds:
        sweep = (await _settled(session, [fold.sweep]))[0]
        folds.append(replace(fold, sweep=sweep))
    return replace(walk, folds=tuple(folds))


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
        catalog_dir: str,
        results_root: str,
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
            results_dir=storage.join(self._results_root, run.id),
            in_memory_rows=self._in_memory_rows,
        )
