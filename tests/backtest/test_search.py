"""Search sweeps through a real server on SQLite and PostgreSQL: Optuna's samplers ask trials as
real engine runs finish, within the budget and parallelism; refused points fail with the reason;
a restarted service continues its study; bad searches name their field."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tests.backtest.runs_support import ints, running_service, spec
from tests.support import field_violations


def search_request(dataset: str, **search: object) -> pb.CreateSweepRequest:
    return pb.CreateSweepRequest(
        base_spec=spec(dataset),
        axes=[
            pb.ParameterAxis(name="fast_period", range=pb.ParameterRange(low=2, high=9)),
            pb.ParameterAxis(name="slow_period", values=ints(20, 30)),
        ],
        metric=pb.RANK_METRIC_TOTAL_RETURN,
        search=pb.SearchSpec(**search),  # type: ignore[arg-type]
    )


async def test_a_tpe_search_spends_its_budget_and_streams_the_best_so_far(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=2) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateSweep(
            search_request(
                dataset,
                algorithm=pb.SEARCH_ALGORITHM_TPE,
                trial_budget=6,
                parallel_trials=2,
                seed=7,
            )
        )
        assert created.sweep.total_runs == 6
        assert created.sweep.search.algorithm == pb.SEARCH_ALGORITHM_TPE
        assert created.sweep.axes[0].range.high == 9
        updates, final = await service.watch_sweep(created.sweep.name)

        assert final.state == pb.SWEEP_STATE_SUCCEEDED
        assert len(final.results) == 6
        assert len(updates) == 6
        for result in final.results:
            assert result.state == pb.BACKTEST_STATE_SUCCEEDED
            assert 2 <= result.parameters["fast_period"].int_value <= 9
            assert result.parameters["slow_period"].int_value in (20, 30)
        # The best so far never gets worse, and ends at the sweep's best.
        best = [u.best_so_far.stats.total_return for u in updates]
        assert best == sorted(best)
        assert updates[-1].best_so_far.backtest == final.results[0].backtest
        for update in updates:
            returns = [u.result.stats.total_return for u in updates[: updates.index(update) + 1]]
            assert update.best_so_far.stats.total_return == max(returns)


async def test_refused_points_fail_with_the_reason_and_count_in_the_budget(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=1) as service:
        dataset = await service.import_trades()
        request = search_request(
            dataset, algorithm=pb.SEARCH_ALGORITHM_RANDOM, trial_budget=4, seed=3
        )
        request.axes[0].range.CopyFrom(pb.ParameterRange(low=30, high=60))  # >= slow: refused
        created = await service.stub.CreateSweep(request)
        _, final = await service.watch_sweep(created.sweep.name)
        assert final.state == pb.SWEEP_STATE_SUCCEEDED
        assert len(final.results) == 4
        for result in final.results:
            assert result.state == pb.BACKTEST_STATE_FAILED
            assert "parameters refused" in result.error_message
            assert "must be less than slow_period" in result.error_message


async def test_a_restarted_service_continues_the_study(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=1) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateSweep(
            search_request(
                dataset,
                algorithm=pb.SEARCH_ALGORITHM_NSGA2,
                trial_budget=4,
                parallel_trials=1,
                seed=11,
                objectives=[pb.RANK_METRIC_TOTAL_RETURN, pb.RANK_METRIC_MAX_DRAWDOWN],
            )
        )
        name = created.sweep.name
        for _ in range(600):
            sweep = (await service.stub.GetSweep(pb.GetSweepRequest(name=name))).sweep
            if sweep.finished_runs >= 1:
                break
            await asyncio.sleep(0.2)
        first = {r.backtest for r in sweep.results if r.state == pb.BACKTEST_STATE_SUCCEEDED}
        assert first
        assert sweep.state == pb.SWEEP_STATE_RUNNING
    async with running_service(database_url, data_dir, workers=1) as service:
        _, final = await service.watch_sweep(name)
        assert final.state == pb.SWEEP_STATE_SUCCEEDED
        assert len(final.results) == 4
        assert first <= {r.backtest for r in final.results}
        assert list(final.search.objectives) == [
            pb.RANK_METRIC_TOTAL_RETURN,
            pb.RANK_METRIC_MAX_DRAWDOWN,
        ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: setattr(r.search, "trial_budget", 0), "search.trial_budget"),
        (lambda r: setattr(r.search, "parallel_trials", 65), "search.parallel_trials"),
        (lambda r: setattr(r.search, "algorithm", 99), "search.algorithm"),
        (lambda r: r.search.objectives.append(pb.RANK_METRIC_WIN_RATE), "search.objectives"),
        (lambda r: r.axes[0].range.CopyFrom(pb.ParameterRange(low=9, high=2)), "axes[0].range"),
        (lambda r: r.axes[0].range.CopyFrom(pb.ParameterRange(low=2, high=9.5)), "axes[0].range"),
        (lambda r: r.axes[0].values.extend(ints(3)), "axes[0]"),
        (lambda r: setattr(r.search, "algorithm", pb.SEARCH_ALGORITHM_GRID), "axes[0].range"),
    ],
)
async def test_bad_searches_name_their_field(database_url, data_dir, change, field):
    async with running_service(database_url, data_dir, workers=0) as service:
        dataset = await service.import_trades(rows=200)
        request = search_request(dataset, algorithm=pb.SEARCH_ALGORITHM_TPE, trial_budget=4)
        change(request)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await service.stub.CreateSweep(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(error.value)


async def test_nsga2_needs_two_objectives(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=0) as service:
        dataset = await service.import_trades(rows=200)
        request = search_request(
            dataset,
            algorithm=pb.SEARCH_ALGORITHM_NSGA2,
            trial_budget=4,
            objectives=[pb.RANK_METRIC_TOTAL_RETURN],
        )
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await service.stub.CreateSweep(request)
        assert "search.objectives" in field_violations(error.value)
