"""Runs and sweeps as the servicer sees them: resolve specs, store, cache, cancel, watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_backtest import run_repository
from tapedeck_backtest.dataset_imports import load_dataset_source
from tapedeck_backtest.datasets import DataKind, DatasetSource
from tapedeck_backtest.engine import DEFAULT_IN_MEMORY_ROWS, RunJob
from tapedeck_backtest.instruments import InstrumentKind
from tapedeck_backtest.runs import (
    AccountKind,
    ParameterValue,
    Run,
    RunSpec,
    RunState,
    normalize_balances,
    running_content_version,
    spec_hash,
)
from tapedeck_backtest.strategies import StrategyRegistry
from tapedeck_backtest.sweeps import (
    Axis,
    Sweep,
    SweepMetric,
    SweepPoint,
    SweepState,
    check_axes,
    expand_grid,
    ranked,
)
from tapedeck_backtest.workers import WorkerPool
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import new_id

WATCH_POLL_SECONDS = 0.2
MIN_BAR_INTERVAL_NS = 1_000_000_000
MAX_BAR_INTERVAL_NS = 86_400_000_000_000


@dataclass(frozen=True)
class SpecRequest:
    """A run's spec as the caller gave it, shapes already checked by the servicer."""

    dataset_id: str
    strategy_id: str
    parameters: dict[str, ParameterValue]
    start_ns: int | None
    end_ns: int | None
    starting_balances: list[tuple[str, Decimal]]
    account_type: AccountKind
    bar_interval_ns: int


def _now() -> datetime:
    return datetime.now(UTC)


def _data_identity(source: DatasetSource) -> str:
    # The same bytes imported as another instrument or kind are different data.
    return f"{source.content_hash}|{source.kind.value}|{source.instrument.to_json()}"


class Runs:
    """The runs and sweeps application layer."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog_dir: Path,
        results_root: Path,
        registry: StrategyRegistry,
        pool: WorkerPool | None,
        in_memory_rows: int = DEFAULT_IN_MEMORY_ROWS,
    ) -> None:
        self._sessions = sessions
        self._in_memory_rows = in_memory_rows
        self._catalog_dir = catalog_dir
        self.results_root = results_root
        self._registry = registry
        self.pool = pool

    # -- specs

    async def _source(self, session: AsyncSession, dataset_id: str, field: str) -> DatasetSource:
        return await load_dataset_source(
            session=session, catalog_dir=self._catalog_dir, dataset_id=dataset_id, field=field
        )

    def resolve(self, request: SpecRequest, source: DatasetSource, *, field: str) -> RunSpec:
        """Return the spec with defaults, window and balances resolved, or InvalidArgument."""
        violations: list[FieldViolation] = []
        start = (
            source.start_ns if request.start_ns is None else max(request.start_ns, source.start_ns)
        )
        end = source.end_ns if request.end_ns is None else min(request.end_ns, source.end_ns)
        if start >= end:
            violations.append(
                FieldViolation(
                    f"{field}.time_range",
                    "does not overlap the dataset's data "
                    f"({source.start_ns} to {source.end_ns} ns since the epoch)",
                )
            )
        instrument = source.instrument
        allowed = {instrument.quote_currency}
        if instrument.kind is not InstrumentKind.PERPETUAL:
            allowed.add(instrument.base_currency)
        if not request.starting_balances:
            violations.append(
                FieldViolation(
                    f"{field}.starting_balances",
                    f"needs at least one balance, e.g. {instrument.quote_currency}",
                )
            )
        for index, (currency, amount) in enumerate(request.starting_balances):
            if currency not in allowed:
                violations.append(
                    FieldViolation(
                        f"{field}.starting_balances[{index}].currency",
                        f"must be one of {sorted(allowed)} for {instrument.instrument_id}",
                    )
                )
            if amount < 0:
                violations.append(
                    FieldViolation(
                        f"{field}.starting_balances[{index}].amount", "must not be negative"
                    )
                )
        if len({c for c, _ in request.starting_balances}) != len(request.starting_balances):
            violations.append(
                FieldViolation(f"{field}.starting_balances", "names a currency twice")
            )
        if request.account_type is AccountKind.CASH and instrument.kind is InstrumentKind.PERPETUAL:
            violations.append(
                FieldViolation(f"{field}.account_type", "a perpetual needs a MARGIN account")
            )
        if source.kind is DataKind.BARS and request.bar_interval_ns % 60_000_000_000 != 0:
            violations.append(
                FieldViolation(
                    f"{field}.bar_interval", "must be whole minutes for a one-minute bars dataset"
                )
            )
        parameters: dict[str, ParameterValue] = {}
        try:
            parameters = self._registry.validate(
                request.strategy_id,
                request.parameters,
                field=f"{field}.parameters",
                strategy_field=f"{field}.strategy",
            )
            definition = self._registry.require(request.strategy_id)
            if source.kind not in definition.data_kinds:
                violations.append(
                    FieldViolation(
                        f"{field}.strategy",
                        f"cannot run on {source.kind.value} data",
                    )
                )
        except InvalidArgument as error:
            violations.extend(error.violations)
        if violations:
            raise InvalidArgument(violations)
        return RunSpec(
            dataset_id=request.dataset_id,
            strategy_id=request.strategy_id,
            parameters=parameters,
            start_ns=start,
            end_ns=end,
            starting_balances=normalize_balances(request.starting_balances),
            account_type=request.account_type,
            bar_interval_ns=request.bar_interval_ns,
        )

    # -- runs

    async def create(self, request: SpecRequest) -> tuple[Run, bool]:
        """Store a QUEUED run, or return the SUCCEEDED run with the same spec (cached)."""
        async with self._sessions() as session, session.begin():
            source = await self._source(session, request.dataset_id, "spec.dataset")
            spec = self.resolve(request, source, field="spec")
            digest = spec_hash(spec, dataset_content_hash=_data_identity(source))
            cached = await run_repository.find_succeeded(session=session, spec_hash=digest)
            if cached is not None:
                return cached, True
            run = self._new_run(spec, digest, sweep_id=None)
            await run_repository.insert_run(session=session, run=run)
        if self.pool is not None:
            self.pool.notify()
        return run, False

    @staticmethod
    def _new_run(spec: RunSpec, digest: str, *, sweep_id: str | None) -> Run:
        run_id = new_id()
        return Run(
            id=run_id,
            spec=spec,
            spec_hash=digest,
            state=RunState.QUEUED,
            create_time=_now(),
            content_version=running_content_version(run_id, RunState.QUEUED, 0),
            sweep_id=sweep_id,
        )

    async def get(self, run_id: str) -> Run:
        """Return one run."""
        async with self._sessions() as session:
            return await run_repository.get_run(session=session, run_id=run_id)

    async def list_runs(
        self,
        *,
        states: Sequence[RunState],
        sweep_id: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Run]:
        """Return a page of runs, newest first."""
        async with self._sessions() as session:
            return await run_repository.list_runs(
                session=session, states=states, sweep_id=sweep_id, after=after, limit=limit
            )

    async def cancel(self, run_id: str) -> Run:
        """Cancel a queued or running run; a final run is returned unchanged."""
        async with self._sessions() as session, session.begin():
            run = await run_repository.cancel_run(session=session, run_id=run_id, now=_now())
        if self.pool is not None:
            self.pool.notify()
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

    async def job_for(self, session: AsyncSession, run: Run) -> RunJob:
        """Return what a worker needs to execute a run (the pool's job resolver)."""
        source = await self._source(session, run.spec.dataset_id, "spec.dataset")
        return RunJob(
            run_id=run.id,
            source=source,
            spec=run.spec,
            results_dir=self.results_root / run.id,
            in_memory_rows=self._in_memory_rows,
        )

    # -- sweeps

    async def create_sweep(
        self, request: SpecRequest, axes: list[Axis], metric: SweepMetric
    ) -> Sweep:
        """Store a sweep and one run per grid point (reusing SUCCEEDED runs with equal specs)."""
        check_axes(axes)
        self._check_axis_names(request.strategy_id, axes)
        grid = expand_grid(axes)
        sweep_id = new_id()
        async with self._sessions() as session, session.begin():
            source = await self._source(session, request.dataset_id, "base_spec.dataset")
            base = self.resolve(request, source, field="base_spec")
            identity = _data_identity(source)
            points: list[tuple[dict[str, object], str]] = []
            by_hash: dict[str, str] = {}
            for point in grid:
                spec = base.with_parameters(self._point_parameters(request, point, axes))
                digest = spec_hash(spec, dataset_content_hash=identity)
                if digest not in by_hash:
                    cached = await run_repository.find_succeeded(session=session, spec_hash=digest)
                    if cached is not None:
                        by_hash[digest] = cached.id
                    else:
                        run = self._new_run(spec, digest, sweep_id=sweep_id)
                        await run_repository.insert_run(session=session, run=run)
                        by_hash[digest] = run.id
                points.append((dict(point), by_hash[digest]))
            await run_repository.insert_sweep(
                session=session,
                sweep_id=sweep_id,
                base_spec=base,
                axes=axes,
                metric=metric,
                create_time=_now(),
                points=points,
            )
        if self.pool is not None:
            self.pool.notify()
        return await self.get_sweep(sweep_id)

    def _check_axis_names(self, strategy_id: str, axes: list[Axis]) -> None:
        definition = self._registry.require(strategy_id, field="base_spec.strategy")
        known = {parameter.name for parameter in definition.parameters}
        violations = [
            FieldViolation(
                f"axes[{index}].name",
                f"{axis.name!r} is not a parameter of {strategy_id} (known: {sorted(known)})",
            )
            for index, axis in enumerate(axes)
            if axis.name not in known
        ]
        if violations:
            raise InvalidArgument(violations)

    def _point_parameters(
        self, request: SpecRequest, point: dict[str, ParameterValue], axes: list[Axis]
    ) -> dict[str, ParameterValue]:
        merged = {**request.parameters, **point}
        try:
            return self._registry.validate(
                request.strategy_id,
                merged,
                field="base_spec.parameters",
                strategy_field="base_spec.strategy",
            )
        except InvalidArgument as error:
            violations = []
            for violation in error.violations:
                field = violation.field
                for index, axis in enumerate(axes):
                    if field.endswith(f"[{axis.name}]") and axis.name in point:
                        position = axis.values.index(point[axis.name])
                        field = f"axes[{index}].values[{position}]"
                violations.append(
                    FieldViolation(field, f"{violation.description} (at point {point})")
                )
            raise InvalidArgument(violations) from None

    async def get_sweep(self, sweep_id: str) -> Sweep:
        """Return a sweep with its points; marks it SUCCEEDED once every run is final."""
        async with self._sessions() as session, session.begin():
            sweep = await run_repository.get_sweep(session=session, sweep_id=sweep_id)
            if sweep.state is SweepState.RUNNING and all(
                p.run.state.is_final for p in sweep.points
            ):
                end = max((p.run.end_time for p in sweep.points if p.run.end_time), default=None)
                await run_repository.finish_sweep(
                    session=session, sweep_id=sweep_id, now=end or _now()
                )
                sweep.state = SweepState.SUCCEEDED
                sweep.end_time = end or _now()
            return sweep

    async def list_sweeps(self, *, after: tuple[datetime, str] | None, limit: int) -> list[Sweep]:
        """Return a page of sweeps, newest first, without their points."""
        async with self._sessions() as session:
            return await run_repository.list_sweeps(session=session, after=after, limit=limit)

    async def watch_sweep(self, sweep_id: str) -> AsyncIterator[tuple[SweepPoint, int] | Sweep]:
        """Yield each point (with its rank so far) as its run ends, then the final sweep."""
        reported: set[int] = set()
        while True:
            sweep = await self.get_sweep(sweep_id)
            finished = [p for p in sweep.points if p.run.state.is_final]
            ranks = {point.position: rank for point, rank in ranked(finished, sweep.metric)}
            for point in finished:
                if point.position not in reported:
                    reported.add(point.position)
                    yield point, ranks[point.position]
            if sweep.state is not SweepState.RUNNING:
                yield sweep
                return
            await asyncio.sleep(WATCH_POLL_SECONDS)
