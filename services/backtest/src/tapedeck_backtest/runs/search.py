"""Search sweeps, the rules: Optuna's TPE, random and NSGA-II samplers over a sweep's axes.

The study is never kept: each ask rebuilds it from the sweep's stored trials (their parameters,
the sampler's own attributes, the runs' states and statistics), with the sampler seeded by the
sweep's seed plus the trial count. A restarted service, or another replica, therefore asks
exactly what this one would have asked next.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from tapedeck_backtest.runs.domain import RunState
from tapedeck_backtest.runs.sweeps import (
    Axis,
    ParameterRange,
    SearchAlgorithm,
    SearchSpec,
    SweepMetric,
    SweepPoint,
)
from tapedeck_backtest.strategies.registry import ParameterType, Scalar, StrategyDefinition
from tapedeck_common.errors import FieldViolation, InvalidArgument

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

MAX_TRIALS = 10_000
MAX_PARALLEL = 64
DEFAULT_PARALLEL = 2
MAX_REASKS = 100


def check_search(search: SearchSpec, metric: SweepMetric, *, field: str = "search") -> SearchSpec:
    """Refuse a budget or parallelism out of bounds and objectives that do not fit the sampler;
    return the spec with its objectives filled in (the sweep's metric unless NSGA-II)."""
    violations = []
    if not 1 <= search.trial_budget <= MAX_TRIALS:
        violations.append(
            FieldViolation(
                f"{field}.trial_budget",
                f"must be from 1 to {MAX_TRIALS}, got {search.trial_budget}",
            )
        )
    if not 1 <= search.parallel_trials <= MAX_PARALLEL:
        violations.append(
            FieldViolation(
                f"{field}.parallel_trials",
                f"must be from 1 to {MAX_PARALLEL}, got {search.parallel_trials}",
            )
        )
    objectives = search.objectives
    if search.algorithm is SearchAlgorithm.NSGA2:
        if len(objectives) < 2 or len(set(objectives)) != len(objectives):
            violations.append(
                FieldViolation(f"{field}.objectives", "NSGA-II needs two or more distinct metrics")
            )
    elif objectives and objectives != (metric,):
        violations.append(
            FieldViolation(
                f"{field}.objectives",
                f"only NSGA-II takes objectives; {search.algorithm} uses metric",
            )
        )
    else:
        objectives = (metric,)
    if violations:
        raise InvalidArgument(violations)
    return SearchSpec(
        search.algorithm, search.trial_budget, search.parallel_trials, search.seed, objectives
    )


@functools.cache
def _optuna() -> ModuleType:
    """Import Optuna on the first search sweep: it and SciPy cost the idle service ~80 MB."""
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def search_space(
    axes: tuple[Axis, ...], definition: StrategyDefinition, *, field: str = "axes"
) -> dict[str, BaseDistribution]:
    """Return the search space: an axis with values is categorical, one with a range numeric of
    the parameter's type (whole numbers for int parameters)."""
    distributions = _optuna().distributions
    types = {p.name: p.type for p in definition.parameters}
    space: dict[str, BaseDistribution] = {}
    violations = []
    for index, axis in enumerate(axes):
        where = f"{field}[{index}]"
        if axis.range is None:
            space[axis.name] = distributions.CategoricalDistribution(axis.values)
            continue
        if axis.values:
            violations.append(FieldViolation(where, "give values or a range, not both"))
            continue
        why = _range_problem(axis.range, types[axis.name])
        if why is not None:
            violations.append(FieldViolation(f"{where}.range", why))
            continue
        low, high, step, log = axis.range.low, axis.range.high, axis.range.step, axis.range.log
        if types[axis.name] is ParameterType.INT:
            space[axis.name] = distributions.IntDistribution(
                int(low), int(high), log=log, step=int(step or 1)
            )
        else:
            space[axis.name] = distributions.FloatDistribution(
                low, high, log=log, step=step or None
            )
    if violations:
        raise InvalidArgument(violations)
    return space


def _range_problem(span: ParameterRange, kind: ParameterType) -> str | None:
    if kind not in (ParameterType.INT, ParameterType.DOUBLE):
        return f"a range needs a number parameter, this one is {kind.value}: give values"
    if not all(math.isfinite(v) for v in (span.low, span.high, span.step)):
        return "low, high and step must be finite"
    if not span.low < span.high:
        return f"low must be below high, got {span.low} and {span.high}"
    if span.step < 0:
        return "step must not be negative"
    if span.log and (span.low <= 0 or span.step):
        return "a log range needs low > 0 and no step"
    if kind is ParameterType.INT and not all(
        float(v).is_integer() for v in (span.low, span.high, span.step)
    ):
        return "an int parameter's low, high and step must be whole numbers"
    return None


def _sampler(search: SearchSpec, asked: int) -> optuna.samplers.BaseSampler:
    samplers = _optuna().samplers
    seed = search.seed + asked
    sampler: optuna.samplers.BaseSampler
    if search.algorithm is SearchAlgorithm.TPE:
        sampler = samplers.TPESampler(seed=seed, n_startup_trials=min(10, search.trial_budget))
    elif search.algorithm is SearchAlgorithm.NSGA2:
        population = max(4, min(50, search.trial_budget // 4))
        sampler = samplers.NSGAIISampler(seed=seed, population_size=population)
    else:
        sampler = samplers.RandomSampler(seed=seed)
    return sampler


@dataclass(frozen=True)
class Asked:
    """A new trial's parameters and the sampler's attributes to store with it (JSON)."""

    parameters: dict[str, Scalar]
    trial_attrs: str


def objective_values(point: SweepPoint, objectives: Sequence[SweepMetric]) -> list[float] | None:
    """Return a finished trial's objective values, or None when the run has none to give."""
    stats = point.run.stats
    if point.run.state is not RunState.SUCCEEDED or stats is None:
        return None
    values = [stats.metric(m.value) for m in objectives]
    return values if all(math.isfinite(v) for v in values) else None


def ask(
    search: SearchSpec, space: dict[str, BaseDistribution], trials: Sequence[SweepPoint]
) -> Asked:
    """Rebuild the study from the stored trials and ask the next point."""
    optuna = _optuna()
    study = optuna.create_study(
        sampler=_sampler(search, len(trials)),
        directions=["minimize" if m.lower_is_better else "maximize" for m in search.objectives],
    )
    known: dict[tuple[Scalar, ...], list[float] | None] = {}
    for trial in trials:
        params = {name: trial.parameters[name] for name in space}
        values = objective_values(trial, search.objectives)
        if values is not None:
            state = optuna.trial.TrialState.COMPLETE
        elif trial.run.state.is_final:
            state = optuna.trial.TrialState.FAIL
        else:
            state = optuna.trial.TrialState.RUNNING
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                values=values,
                params=params,
                distributions=space,
                system_attrs=json.loads(trial.trial_attrs or "{}"),
            )
        )
        known[_key(params, space)] = values
    # A point already tried is not worth a trial: the study learns its known result (a failure
    # when it has none yet) and the sampler is asked again. Only a space with fewer points than
    # the budget runs out of new ones; then the last point asked is tried again.
    for _ in range(MAX_REASKS):
        asked = study.ask(space)
        key = _key(asked.params, space)
        if key not in known:
            break
        values = known[key]
        if values is None:
            study.tell(asked, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(asked, values)
    frozen = study.get_trials(deepcopy=False)[asked.number]
    return Asked(parameters=dict(asked.params), trial_attrs=json.dumps(frozen.system_attrs))


def _key(params: dict[str, Scalar], space: dict[str, BaseDistribution]) -> tuple[Scalar, ...]:
    return tuple(params[name] for name in sorted(space))
