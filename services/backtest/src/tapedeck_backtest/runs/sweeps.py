"""Parameter sweeps: the grid (a bounded cartesian product), its specs, ranking and completion."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from tapedeck_backtest.runs.domain import Run, RunSpec, RunState
from tapedeck_backtest.strategies.registry import Scalar, StrategyRegistry
from tapedeck_common.errors import FieldViolation, InvalidArgument

MAX_SWEEP_POINTS = 10_000


class SweepMetric(StrEnum):
    """The statistic a sweep ranks by (a Stats field name)."""

    SHARPE_RATIO = "sharpe_ratio"
    SORTINO_RATIO = "sortino_ratio"
    TOTAL_RETURN = "total_return"
    PROFIT_FACTOR = "profit_factor"
    MAX_DRAWDOWN = "max_drawdown"
    WIN_RATE = "win_rate"
    CAGR = "cagr"
    CALMAR_RATIO = "calmar_ratio"
    EXPECTANCY = "expectancy"

    @property
    def lower_is_better(self) -> bool:
        """Tell whether smaller values rank first."""
        return self is SweepMetric.MAX_DRAWDOWN


class SweepState(StrEnum):
    """Where a sweep is in its life."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    CANCELLED = "CANCELLED"


class SearchAlgorithm(StrEnum):
    """How a sweep picks its points: every point of a grid, or a sampler over the axes."""

    GRID = "GRID"
    RANDOM = "RANDOM"
    TPE = "TPE"
    NSGA2 = "NSGA2"


@dataclass(frozen=True)
class ParameterRange:
    """A numeric interval to search; `step` 0 means continuous (doubles only)."""

    low: float
    high: float
    step: float = 0.0
    log: bool = False


@dataclass(frozen=True)
class Axis:
    """The values one parameter takes, or (searches only) the range it is sampled from."""

    name: str
    values: tuple[Scalar, ...]
    range: ParameterRange | None = None


@dataclass(frozen=True)
class SearchSpec:
    """A search: the sampler, the trial budget, trials in flight at once, the seed, and the
    objectives (NSGA-II: two or more metrics; the others: the sweep's metric)."""

    algorithm: SearchAlgorithm
    trial_budget: int
    parallel_trials: int
    seed: int
    objectives: tuple[SweepMetric, ...]


@dataclass(frozen=True)
class SweepPoint:
    """One point (a grid point, or a search's trial) and the run holding its result;
    `trial_attrs` is what the sampler stored with a trial (JSON; empty for grids)."""

    position: int
    parameters: dict[str, Scalar]
    run: Run
    trial_attrs: str = ""


@dataclass(frozen=True)
class Sweep:
    """A parameter grid run as many backtests.

    `finished_runs` counts the points whose run is final and `last_end_time` is when the last
    of them ended; `points` is empty when sweeps are listed.
    """

    id: str
    base_spec: RunSpec
    axes: tuple[Axis, ...]
    metric: SweepMetric
    state: SweepState
    total_runs: int
    create_time: datetime
    end_time: datetime | None = None
    points: tuple[SweepPoint, ...] = ()
    finished_runs: int = 0
    last_end_time: datetime | None = None
    search: SearchSpec | None = None


def search_to_json(search: SearchSpec) -> str:
    """Return a search spec as stored."""
    return json.dumps(
        {
            "algorithm": search.algorithm.value,
            "trial_budget": search.trial_budget,
            "parallel_trials": search.parallel_trials,
            "seed": search.seed,
            "objectives": [m.value for m in search.objectives],
        }
    )


def search_from_json(text: str) -> SearchSpec:
    """Parse what `search_to_json` wrote."""
    raw = json.loads(text)
    return SearchSpec(
        algorithm=SearchAlgorithm(raw["algorithm"]),
        trial_budget=int(raw["trial_budget"]),
        parallel_trials=int(raw["parallel_trials"]),
        seed=int(raw["seed"]),
        objectives=tuple(SweepMetric(m) for m in raw["objectives"]),
    )


def finished(points: tuple[SweepPoint, ...]) -> tuple[int, datetime | None]:
    """Return how many points' runs are final, and when the last of them ended."""
    ends = [p.run.end_time for p in points if p.run.state.is_final and p.run.end_time is not None]
    return sum(1 for p in points if p.run.state.is_final), max(ends, default=None)


def settle(sweep: Sweep, *, now: datetime) -> Sweep:
    """Return the sweep SUCCEEDED once every run is final, ended when its last run ended."""
    if sweep.state is not SweepState.RUNNING or sweep.finished_runs < sweep.total_runs:
        return sweep
    end = sweep.last_end_time if sweep.last_end_time is not None else now
    return replace(sweep, state=SweepState.SUCCEEDED, end_time=end)


def check_axes(
    axes: tuple[Axis, ...],
    registry: StrategyRegistry,
    strategy_id: str,
    *,
    grid: bool = True,
    field: str = "axes",
) -> None:
    """Refuse no axes, unknown, repeated or empty axes, and grids above MAX_SWEEP_POINTS (a grid
    takes values only; a search an axis's values or its range)."""
    violations: list[FieldViolation] = []
    if not axes:
        violations.append(FieldViolation(field, "needs at least one parameter axis"))
    seen: set[str] = set()
    for index, axis in enumerate(axes):
        if axis.name == "":
            violations.append(FieldViolation(f"{field}[{index}].name", "is required"))
        elif axis.name in seen:
            violations.append(
                FieldViolation(f"{field}[{index}].name", f"{axis.name!r} appears twice")
            )
        seen.add(axis.name)
        if grid and axis.range is not None:
            violations.append(FieldViolation(f"{field}[{index}].range", "a grid takes values"))
        elif not axis.values and axis.range is None:
            violations.append(FieldViolation(f"{field}[{index}].values", "is empty"))
    if violations:
        raise InvalidArgument(violations)
    size = math.prod(len(axis.values) for axis in axes)
    if grid and size > MAX_SWEEP_POINTS:
        raise InvalidArgument(
            [
                FieldViolation(
                    field, f"the grid has {size} points; at most {MAX_SWEEP_POINTS} allowed"
                )
            ]
        )
    known = {p.name for p in registry.require(strategy_id, field="base_spec.strategy").parameters}
    unknown = [
        FieldViolation(
            f"{field}[{index}].name",
            f"{axis.name!r} is not a parameter of {strategy_id} (known: {sorted(known)})",
        )
        for index, axis in enumerate(axes)
        if axis.name not in known
    ]
    if unknown:
        raise InvalidArgument(unknown)


def expand_grid(axes: tuple[Axis, ...]) -> list[dict[str, Scalar]]:
    """Return every point of the cartesian product, first axis slowest."""
    names = [axis.name for axis in axes]
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(axis.values for axis in axes))
    ]


def point_specs(
    base: RunSpec,
    parameters: dict[str, Scalar],
    axes: tuple[Axis, ...],
    registry: StrategyRegistry,
) -> list[tuple[dict[str, Scalar], RunSpec]]:
    """Return each grid point with its spec: the base spec with the request's parameters and the
    point's values, validated; a bad value is named by its axis and position."""
    specs = []
    for point in expand_grid(axes):
        try:
            resolved = registry.validate(
                base.strategy_id,
                {**parameters, **point},
                field="base_spec.parameters",
                strategy_field="base_spec.strategy",
            )
        except InvalidArgument as error:
            raise InvalidArgument(
                [_at_point(violation, point, axes) for violation in error.violations]
            ) from None
        specs.append((point, replace(base, parameters=resolved)))
    return specs


def _at_point(
    violation: FieldViolation, point: dict[str, Scalar], axes: tuple[Axis, ...]
) -> FieldViolation:
    field = violation.field
    for index, axis in enumerate(axes):
        if field.endswith(f"[{axis.name}]") and axis.name in point:
            field = f"axes[{index}].values[{axis.values.index(point[axis.name])}]"
    return FieldViolation(field, f"{violation.description} (at point {point})")


def ranked(points: tuple[SweepPoint, ...], metric: SweepMetric) -> list[tuple[SweepPoint, int]]:
    """Return points best first with 1-based ranks; unfinished or unrankable points get 0, last."""
    scored: list[tuple[float, SweepPoint]] = []
    rest: list[SweepPoint] = []
    for point in points:
        stats = point.run.stats
        value = stats.metric(metric.value) if stats is not None else math.nan
        if point.run.state is RunState.SUCCEEDED and not math.isnan(value):
            scored.append((value if metric.lower_is_better else -value, point))
        else:
            rest.append(point)
    scored.sort(key=lambda item: (item[0], item[1].position))
    result = [(point, rank) for rank, (_, point) in enumerate(scored, start=1)]
    result.extend((point, 0) for point in rest)
    return result
