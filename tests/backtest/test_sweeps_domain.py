"""The sweeps domain on its own, no database: the grid, its specs, ranking and completion."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tapedeck_backtest.runs.domain import AccountKind, Run, RunSpec, RunState, Stats
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
from tapedeck_backtest.strategies import load_registry
from tapedeck_common.errors import InvalidArgument

REGISTRY = load_registry()
T0 = datetime(2024, 3, 1, tzinfo=UTC)
SPEC = RunSpec(
    dataset_id="d1",
    strategy_id="ema_cross",
    parameters={},
    start_ns=0,
    end_ns=1,
    starting_balances=(("USDT", Decimal(1000)),),
    account_type=AccountKind.CASH,
)


def stats(total_return: float, max_drawdown: float = 0.1) -> Stats:
    return Stats(
        total_return=total_return,
        pnl="0",
        sharpe_ratio=float("nan"),
        sortino_ratio=0.0,
        max_drawdown=max_drawdown,
        win_rate=0.5,
        profit_factor=1.0,
        trade_count=1,
        exposure=0.5,
        fees="0",
        starting_equity="1000",
        ending_equity="1000",
        fill_count=2,
        run_seconds=1.0,
    )


def run(run_id: str, state: RunState, *, ended: int | None = None, result: Stats | None = None):
    return Run(
        id=run_id,
        spec=SPEC,
        spec_hash=run_id,
        state=state,
        create_time=T0,
        content_version="v",
        stats=result,
        end_time=None if ended is None else T0 + timedelta(minutes=ended),
    )


def sweep(*runs: Run) -> Sweep:
    points = tuple(SweepPoint(i, {"fast_period": i}, r) for i, r in enumerate(runs))
    count, last_end = finished(points)
    return Sweep(
        id="s1",
        base_spec=SPEC,
        axes=(Axis("fast_period", tuple(range(len(runs)))),),
        metric=SweepMetric.TOTAL_RETURN,
        state=SweepState.RUNNING,
        total_runs=len(points),
        create_time=T0,
        points=points,
        finished_runs=count,
        last_end_time=last_end,
    )


def test_a_sweep_succeeds_when_every_run_is_final_ending_with_its_last_run():
    now = T0 + timedelta(hours=5)
    running = sweep(run("a", RunState.SUCCEEDED, ended=3), run("b", RunState.RUNNING))
    assert running.finished_runs == 1
    assert settle(running, now=now) == running

    done = sweep(run("a", RunState.SUCCEEDED, ended=3), run("b", RunState.FAILED, ended=7))
    settled = settle(done, now=now)
    assert settled.state is SweepState.SUCCEEDED
    assert settled.end_time == T0 + timedelta(minutes=7)
    assert done.state is SweepState.RUNNING  # frozen: a new sweep, the old one unchanged
    assert settle(settled, now=now + timedelta(hours=1)) == settled


def test_a_sweep_whose_runs_have_no_end_time_ends_now():
    listed = dataclasses.replace(sweep(), total_runs=2, finished_runs=2, last_end_time=None)
    now = T0 + timedelta(days=1)
    assert settle(listed, now=now).end_time == now


def test_axes_are_checked_against_the_grid_limits_and_the_strategy():
    cases = [
        ((), "axes"),
        ((Axis("", (1,)),), "axes[0].name"),
        ((Axis("fast_period", (3,)), Axis("fast_period", (4,))), "axes[1].name"),
        ((Axis("fast_period", ()),), "axes[0].values"),
        ((Axis("fast_period", tuple(range(101))), Axis("slow_period", tuple(range(101)))), "axes"),
        ((Axis("nope", (1,)),), "axes[0].name"),
    ]
    for axes, field in cases:
        with pytest.raises(InvalidArgument) as caught:
            check_axes(axes, REGISTRY, "ema_cross")
        assert field in {v.field for v in caught.value.violations}, axes


def test_every_point_gets_the_base_spec_with_its_values_and_bad_values_name_their_axis():
    axes = (Axis("fast_period", (3, 6)), Axis("slow_period", (12, 30)))
    specs = point_specs(SPEC, {"trade_size": 0.5}, axes, REGISTRY)
    assert [point for point, _ in specs] == [
        {"fast_period": 3, "slow_period": 12},
        {"fast_period": 3, "slow_period": 30},
        {"fast_period": 6, "slow_period": 12},
        {"fast_period": 6, "slow_period": 30},
    ]
    assert all(spec.parameters["trade_size"] == 0.5 for _, spec in specs)
    assert specs[3][1].parameters["fast_period"] == 6
    assert specs[3][1] == dataclasses.replace(SPEC, parameters=specs[3][1].parameters)
    with pytest.raises(InvalidArgument) as caught:
        point_specs(SPEC, {}, (Axis("fast_period", (5, 1)),), REGISTRY)
    assert [v.field for v in caught.value.violations] == ["axes[0].values[1]"]


def test_ranking_puts_the_best_first_and_unfinished_or_unrankable_points_last():
    points = sweep(
        run("a", RunState.SUCCEEDED, ended=1, result=stats(0.1, max_drawdown=0.3)),
        run("b", RunState.RUNNING),
        run("c", RunState.SUCCEEDED, ended=2, result=stats(0.3, max_drawdown=0.2)),
        run("d", RunState.SUCCEEDED, ended=3, result=stats(float("nan"), max_drawdown=0.4)),
        run("e", RunState.SUCCEEDED, ended=4, result=stats(0.2, max_drawdown=0.1)),
    ).points
    by_return = [(p.run.id, rank) for p, rank in ranked(points, SweepMetric.TOTAL_RETURN)]
    assert by_return == [("c", 1), ("e", 2), ("a", 3), ("b", 0), ("d", 0)]
    by_drawdown = [(p.run.id, rank) for p, rank in ranked(points, SweepMetric.MAX_DRAWDOWN)]
    assert by_drawdown[:4] == [("e", 1), ("c", 2), ("a", 3), ("d", 4)]


@pytest.mark.parametrize(
    "metric", [SweepMetric.CAGR, SweepMetric.CALMAR_RATIO, SweepMetric.EXPECTANCY]
)
def test_ranking_by_cagr_calmar_or_expectancy_puts_the_highest_first_and_n_a_last(metric):
    def with_figure(value: float) -> Stats:
        return dataclasses.replace(stats(0.0), **{metric.value: value})

    points = sweep(
        run("a", RunState.SUCCEEDED, ended=1, result=with_figure(0.5)),
        run("b", RunState.SUCCEEDED, ended=2, result=with_figure(float("nan"))),
        run("c", RunState.SUCCEEDED, ended=3, result=with_figure(2.0)),
        run("d", RunState.SUCCEEDED, ended=4, result=with_figure(-1.0)),
    ).points
    assert [(p.run.id, rank) for p, rank in ranked(points, metric)] == [
        ("c", 1),
        ("a", 2),
        ("d", 3),
        ("b", 0),
    ]
