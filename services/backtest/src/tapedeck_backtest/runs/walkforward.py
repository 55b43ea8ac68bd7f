"""Walk-forward analysis, the rules: fold windows, each fold's winner, efficiency, the stitched
out-of-sample curve.

A walk-forward splits a dataset's window into folds. Each fold optimises on its in-sample window
(a sweep: a grid or a search) and runs the winner on the out-of-sample window that follows it.
Out-of-sample windows follow each other without overlapping; an in-sample window ends where its
out-of-sample window starts (windows are half-open, so it never sees that data). Rolling folds
keep the in-sample length; anchored folds start every in-sample window at the first instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from tapedeck_backtest.runs.domain import Run, RunSpec, RunState
from tapedeck_backtest.runs.sweeps import Sweep, SweepMetric, SweepState, ranked
from tapedeck_backtest.strategies.registry import Scalar
from tapedeck_common.errors import FieldViolation, InvalidArgument

MAX_FOLDS = 50
NANOS_PER_YEAR = 365 * 86_400 * 1_000_000_000


class WalkForwardState(StrEnum):
    """Where a walk-forward is in its life."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class WalkForwardSpec:
    """How to cut the window: fold count, anchored or rolling, and the two windows' lengths."""

    folds: int
    anchored: bool
    in_sample_ns: int
    out_of_sample_ns: int


@dataclass(frozen=True)
class FoldWindow:
    """One fold's in-sample window [in_start, in_end) and out-of-sample [out_start, out_end)."""

    index: int
    in_start_ns: int
    in_end_ns: int
    out_start_ns: int
    out_end_ns: int


@dataclass(frozen=True)
class Fold:
    """A fold as stored: its windows, its in-sample sweep, and its out-of-sample run once its
    winner is known (`error` when the sweep had no winner)."""

    window: FoldWindow
    sweep: Sweep
    out_run: Run | None = None
    error: str = ""

    @property
    def winner(self) -> tuple[dict[str, Scalar], float] | None:
        """Return the in-sample winner's parameters and metric, once the sweep is final."""
        if self.sweep.state is SweepState.RUNNING:
            return None
        best = ranked(self.sweep.points, self.sweep.metric)
        if not best or best[0][1] == 0:
            return None
        point = best[0][0]
        assert point.run.stats is not None
        return point.parameters, point.run.stats.metric(self.sweep.metric.value)

    @property
    def in_sample_run(self) -> Run | None:
        """Return the in-sample winner's run."""
        best = ranked(self.sweep.points, self.sweep.metric)
        return best[0][0].run if best and best[0][1] else None

    @property
    def efficiency(self) -> float:
        """Walk-forward efficiency (Pardo): the out-of-sample run's annualised return over the
        in-sample winner's; NaN until both are known or when the in-sample return is not
        positive."""
        inside = self.in_sample_run
        if self.out_run is None or inside is None:
            return math.nan
        if self.out_run.state is not RunState.SUCCEEDED:
            return math.nan
        in_rate = annualised(inside, self.window.in_end_ns - self.window.in_start_ns)
        out_rate = annualised(self.out_run, self.window.out_end_ns - self.window.out_start_ns)
        return out_rate / in_rate if in_rate > 0 else math.nan


@dataclass(frozen=True)
class WalkForward:
    """A walk-forward: its spec, the run spec its folds share, its metric and folds."""

    id: str
    spec: WalkForwardSpec
    base_spec: RunSpec
    metric: SweepMetric
    state: WalkForwardState
    create_time: datetime
    folds: tuple[Fold, ...] = ()
    end_time: datetime | None = None

    @property
    def efficiency(self) -> float:
        """The whole walk-forward's efficiency: mean annualised out-of-sample return over mean
        annualised in-sample return, over the folds that have both."""
        pairs = []
        for fold in self.folds:
            inside = fold.in_sample_run
            if (
                inside is None
                or fold.out_run is None
                or fold.out_run.state is not RunState.SUCCEEDED
            ):
                continue
            window = fold.window
            pairs.append(
                (
                    annualised(inside, window.in_end_ns - window.in_start_ns),
                    annualised(fold.out_run, window.out_end_ns - window.out_start_ns),
                )
            )
        if not pairs:
            return math.nan
        in_rate = sum(p[0] for p in pairs) / len(pairs)
        return sum(p[1] for p in pairs) / len(pairs) / in_rate if in_rate > 0 else math.nan


def annualised(run: Run, window_ns: int) -> float:
    """Return a run's total return scaled to a year (simple, as Pardo's efficiency uses)."""
    assert run.stats is not None
    return run.stats.total_return * NANOS_PER_YEAR / window_ns


def check_walk_forward(spec: WalkForwardSpec, *, field: str = "walk_forward") -> None:
    """Refuse fold counts and window lengths out of bounds."""
    violations = []
    if not 1 <= spec.folds <= MAX_FOLDS:
        violations.append(
            FieldViolation(f"{field}.folds", f"must be from 1 to {MAX_FOLDS}, got {spec.folds}")
        )
    if spec.in_sample_ns <= 0:
        violations.append(FieldViolation(f"{field}.in_sample_duration", "must be positive"))
    if spec.out_of_sample_ns <= 0:
        violations.append(FieldViolation(f"{field}.out_of_sample_duration", "must be positive"))
    if violations:
        raise InvalidArgument(violations)


def fold_windows(spec: WalkForwardSpec, start_ns: int, end_ns: int) -> tuple[FoldWindow, ...]:
    """Cut [start, end) into the spec's folds, or refuse when they do not fit."""
    check_walk_forward(spec)
    needed = spec.in_sample_ns + spec.folds * spec.out_of_sample_ns
    if start_ns + needed > end_ns:
        raise InvalidArgument(
            [
                FieldViolation(
                    "walk_forward",
                    f"needs {needed / 86_400e9:.2f} days (in-sample + folds x out-of-sample); "
                    f"the window has {(end_ns - start_ns) / 86_400e9:.2f}",
                )
            ]
        )
    folds = []
    for index in range(spec.folds):
        out_start = start_ns + spec.in_sample_ns + index * spec.out_of_sample_ns
        in_start = start_ns if spec.anchored else out_start - spec.in_sample_ns
        folds.append(
            FoldWindow(index, in_start, out_start, out_start, out_start + spec.out_of_sample_ns)
        )
    return tuple(folds)


def settle_walk_forward(walk: WalkForward, *, now: datetime) -> WalkForward:
    """Return the walk-forward SUCCEEDED once every fold's out-of-sample run is final, FAILED
    once any fold cannot go on (no in-sample winner)."""
    if walk.state is not WalkForwardState.RUNNING:
        return walk
    if any(fold.error for fold in walk.folds):
        return replace(walk, state=WalkForwardState.FAILED, end_time=now)
    if all(fold.out_run is not None and fold.out_run.state.is_final for fold in walk.folds):
        return replace(walk, state=WalkForwardState.SUCCEEDED, end_time=now)
    return walk


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def stitch(curves: list[tuple[IntArray, FloatArray]]) -> tuple[IntArray, FloatArray]:
    """Chain the folds' out-of-sample equity curves into one: each fold's curve is scaled so it
    starts where the previous one ended (returns compound, as one account's would)."""
    times: list[IntArray] = []
    values: list[FloatArray] = []
    level = 1.0
    for fold_times, fold_values in curves:
        if fold_values.size == 0:
            continue
        scale = level / fold_values[0] if values else 1.0
        times.append(fold_times)
        values.append(fold_values * scale)
        level = float(values[-1][-1])
    if not times:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    return np.concatenate(times), np.concatenate(values)
