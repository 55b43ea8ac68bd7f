"""Search rules without a database: the space from the axes, the checks, and an ask that depends
only on the stored trials and the seed (what makes a restarted study continue)."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tapedeck_backtest.runs.domain import RunState
from tapedeck_backtest.runs.search import ask, check_search, objective_values, search_space
from tapedeck_backtest.runs.sweeps import (
    Axis,
    ParameterRange,
    SearchAlgorithm,
    SearchSpec,
    SweepMetric,
    SweepPoint,
)
from tapedeck_common.errors import InvalidArgument
from tests.backtest.test_sweeps_domain import REGISTRY, run, stats

EMA = REGISTRY.require("ema_cross")
AXES = (
    Axis("fast_period", (), ParameterRange(2, 9)),
    Axis("trade_size", (), ParameterRange(0.1, 1.0, log=True)),
    Axis("slow_period", (20, 30)),
)
TPE = SearchSpec(SearchAlgorithm.TPE, 20, 2, 5, (SweepMetric.TOTAL_RETURN,))


def test_the_space_follows_each_parameters_type():
    space = search_space(AXES, EMA)
    assert space["fast_period"] == IntDistribution(2, 9)
    assert space["trade_size"] == FloatDistribution(0.1, 1.0, log=True)
    assert space["slow_period"] == CategoricalDistribution((20, 30))


@pytest.mark.parametrize(
    ("span", "why"),
    [
        (ParameterRange(5, 5), "low must be below high"),
        (ParameterRange(2, 9.5), "whole numbers"),
        (ParameterRange(1, 9, step=2, log=True), "log range"),
        (ParameterRange(2, float("inf")), "finite"),
    ],
)
def test_bad_ranges_say_why(span, why):
    with pytest.raises(InvalidArgument) as error:
        search_space((Axis("fast_period", (), span),), EMA)
    assert error.value.violations[0].field == "axes[0].range"
    assert why in error.value.violations[0].description


def test_only_nsga2_takes_objectives_and_it_needs_two():
    nsga = SearchSpec(SearchAlgorithm.NSGA2, 10, 1, 0, (SweepMetric.SHARPE_RATIO,))
    with pytest.raises(InvalidArgument):
        check_search(nsga, SweepMetric.SHARPE_RATIO)
    two = SearchSpec(
        SearchAlgorithm.NSGA2, 10, 1, 0, (SweepMetric.SHARPE_RATIO, SweepMetric.MAX_DRAWDOWN)
    )
    assert check_search(two, SweepMetric.TOTAL_RETURN) == two
    filled = check_search(SearchSpec(SearchAlgorithm.TPE, 10, 1, 0, ()), SweepMetric.WIN_RATE)
    assert filled.objectives == (SweepMetric.WIN_RATE,)


def trials(count: int) -> list[SweepPoint]:
    space = search_space(AXES, EMA)
    points: list[SweepPoint] = []
    for number in range(count):
        asked = ask(TPE, space, points)
        result = stats(total_return=-abs(asked.parameters["fast_period"] - 4) / 10)
        done = run(f"r{number}", RunState.SUCCEEDED, ended=number, result=result)
        points.append(SweepPoint(number, asked.parameters, done, asked.trial_attrs))
    return points


def test_asking_depends_only_on_the_stored_trials_and_the_seed():
    first, second = trials(14), trials(14)
    assert [p.parameters for p in first] == [p.parameters for p in second]
    space = search_space(AXES, EMA)
    assert ask(TPE, space, first).parameters == ask(TPE, space, second).parameters
    # After its random start-up TPE samples near the optimum (fast_period 4) more often.
    late = [p.parameters["fast_period"] for p in first[10:]]
    assert sum(abs(v - 4) <= 1 for v in late) >= 2


def test_a_run_without_a_finite_value_gives_no_objective():
    failed = SweepPoint(0, {}, run("f", RunState.FAILED, ended=1))
    assert objective_values(failed, (SweepMetric.TOTAL_RETURN,)) is None
    nan = SweepPoint(0, {}, run("n", RunState.SUCCEEDED, ended=1, result=stats(0.1)))
    assert objective_values(nan, (SweepMetric.SHARPE_RATIO,)) is None
    assert objective_values(nan, (SweepMetric.TOTAL_RETURN,)) == [0.1]


@pytest.mark.parametrize("algorithm", [SearchAlgorithm.TPE, SearchAlgorithm.RANDOM])
def test_a_point_already_tried_is_not_asked_again_while_new_ones_remain(algorithm):
    # Six points in all: a budget of six tries each once.
    axes = (Axis("fast_period", (), ParameterRange(2, 4)), Axis("slow_period", (20, 30)))
    space = search_space(axes, EMA)
    search = SearchSpec(algorithm, 6, 1, 3, (SweepMetric.TOTAL_RETURN,))
    points: list[SweepPoint] = []
    for number in range(6):
        asked = ask(search, space, points)
        result = stats(total_return=asked.parameters["fast_period"] / 10)
        done = run(f"r{number}", RunState.SUCCEEDED, ended=number, result=result)
        points.append(SweepPoint(number, asked.parameters, done, asked.trial_attrs))
    tried = {(p.parameters["fast_period"], p.parameters["slow_period"]) for p in points}
    assert len(tried) == 6
