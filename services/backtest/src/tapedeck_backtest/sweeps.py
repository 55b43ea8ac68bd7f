"""Parameter sweeps: the grid (a bounded cartesian product) and the ranking of its results."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tapedeck_backtest.runs import ParameterValue, Run, RunSpec, RunState
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

    @property
    def lower_is_better(self) -> bool:
        """Tell whether smaller values rank first."""
        return self is SweepMetric.MAX_DRAWDOWN


class SweepState(StrEnum):
    """Where a sweep is in its life."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Axis:
    """The values one parameter takes."""

    name: str
    values: list[ParameterValue]


@dataclass(frozen=True)
class SweepPoint:
    """One grid point and the run holding its result."""

    position: int
    parameters: dict[str, object]
    run: Run


@dataclass
class Sweep:
    """A parameter grid run as many backtests."""

    id: str
    base_spec: RunSpec
    axes: list[Axis]
    metric: SweepMetric
    state: SweepState
    total_runs: int
    create_time: datetime
    end_time: datetime | None = None
    points: list[SweepPoint] = field(default_factory=list)
    finished_count: int | None = None  # set when listed without points

    @property
    def finished_runs(self) -> int:
        """Count the points whose run is final."""
        if self.finished_count is not None:
            return self.finished_count
        return sum(1 for p in self.points if p.run.state.is_final)


def check_axes(axes: list[Axis], *, field_name: str = "axes") -> None:
    """Refuse an empty grid, repeated or empty axes, and grids above MAX_SWEEP_POINTS."""
    violations: list[FieldViolation] = []
    if not axes:
        violations.append(FieldViolation(field_name, "needs at least one parameter axis"))
    seen: set[str] = set()
    for index, axis in enumerate(axes):
        if axis.name == "":
            violations.append(FieldViolation(f"{field_name}[{index}].name", "is required"))
        elif axis.name in seen:
            violations.append(
                FieldViolation(f"{field_name}[{index}].name", f"{axis.name!r} appears twice")
            )
        seen.add(axis.name)
        if not axis.values:
            violations.append(FieldViolation(f"{field_name}[{index}].values", "is empty"))
    if violations:
        raise InvalidArgument(violations)
    size = math.prod(len(axis.values) for axis in axes)
    if size > MAX_SWEEP_POINTS:
        raise InvalidArgument(
            [
                FieldViolation(
                    field_name, f"the grid has {size} points; at most {MAX_SWEEP_POINTS} allowed"
                )
            ]
        )


def expand_grid(axes: list[Axis]) -> list[dict[str, ParameterValue]]:
    """Return every point of the cartesian product, first axis slowest."""
    names = [axis.name for axis in axes]
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(axis.values for axis in axes))
    ]


def ranked(points: list[SweepPoint], metric: SweepMetric) -> list[tuple[SweepPoint, int]]:
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
