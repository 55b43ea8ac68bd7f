"""AnalyzeSweep through a real server on SQLite and PostgreSQL: a finished sweep of real engine
runs, its heatmap and neighbourhood scores, and the overfitting odds recomputed here from the
runs' equity curves as StreamEquity serves them."""

from __future__ import annotations

import math
from statistics import NormalDist

import grpc
import numpy as np
import pandas as pd
import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tests.backtest.runs_support import ints, running_service, spec
from tests.backtest.test_analysis_domain import _pbo_by_definition
from tests.support import field_violations

GAMMA = 0.5772156649015329


async def _minute_returns(stub, backtest: str) -> pd.Series:
    times, equity = [], []
    async for message in stub.StreamEquity(pb.StreamEquityRequest(backtest=backtest)):
        times.extend(message.chunk.times)
        equity.extend(message.chunk.equity)
    curve = pd.Series(equity, index=pd.to_datetime(times, unit="ns", utc=True))
    closes = curve.groupby(curve.index.floor("min")).last()
    return closes.pct_change().iloc[1:]


async def test_a_finished_sweep_is_mapped_scored_and_its_odds_match_the_papers(
    database_url, data_dir
):
    async with running_service(database_url, data_dir, workers=2) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateSweep(
            pb.CreateSweepRequest(
                base_spec=spec(dataset),
                axes=[
                    pb.ParameterAxis(name="fast_period", values=ints(3, 6)),
                    pb.ParameterAxis(name="slow_period", values=ints(12, 30)),
                ],
                metric=pb.RANK_METRIC_TOTAL_RETURN,
            )
        )
        _, sweep = await service.watch_sweep(created.sweep.name)
        answer = await service.stub.AnalyzeSweep(
            pb.AnalyzeSweepRequest(name=sweep.name, cscv_splits=4)
        )

        # Points: the sweep's metric, ranked as GetSweep ranks; in a 2 x 2 grid every point
        # neighbours every other, so each neighbourhood score is the grid's mean.
        assert answer.metric == pb.RANK_METRIC_TOTAL_RETURN
        returns = {r.backtest: r.stats.total_return for r in sweep.results}
        ranks = {r.backtest: r.rank for r in sweep.results}
        assert {p.backtest: p.value for p in answer.points} == pytest.approx(returns)
        assert {p.backtest: p.rank for p in answer.points} == ranks
        mean = sum(returns.values()) / 4
        assert [p.neighbourhood_score for p in answer.points] == pytest.approx([mean] * 4)

        heatmap = answer.heatmap
        assert (heatmap.x_parameter, heatmap.y_parameter) == ("fast_period", "slow_period")
        assert [v.int_value for v in heatmap.x_values] == [3, 6]
        assert [v.int_value for v in heatmap.y_values] == [12, 30]
        for cell in heatmap.cells:
            point = cell.point.parameters
            assert point["fast_period"].int_value == [3, 6][cell.x_index]
            assert point["slow_period"].int_value == [12, 30][cell.y_index]
        assert len(heatmap.cells) == 4

        # Odds, recomputed from StreamEquity: minute returns aligned over the four runs.
        names = [p.backtest for p in answer.points]
        frame = pd.concat([await _minute_returns(service.stub, n) for n in names], axis=1).dropna()
        matrix = frame.to_numpy()
        odds = answer.odds
        assert odds.unavailable_reason == ""
        assert odds.period == "MINUTE"
        assert odds.observations == matrix.shape[0]
        ratios = matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)
        best = int(np.argmax(ratios))
        assert odds.best_backtest == names[best]
        assert odds.trials == 4
        assert odds.best_sharpe_ratio == pytest.approx(ratios[best])
        variance = float(np.var(ratios, ddof=1))
        assert odds.sharpe_ratio_variance == pytest.approx(variance)
        normal = NormalDist()
        expected = math.sqrt(variance) * (
            (1 - GAMMA) * normal.inv_cdf(1 - 1 / 4) + GAMMA * normal.inv_cdf(1 - 1 / (4 * math.e))
        )
        assert odds.expected_max_sharpe_ratio == pytest.approx(expected)
        centred = matrix[:, best] - matrix[:, best].mean()
        skew = float(np.mean(centred**3) / np.std(centred) ** 3)
        kurt = float(np.mean(centred**4) / np.std(centred) ** 4)
        z = (ratios[best] - expected) * math.sqrt(len(centred) - 1)
        z /= math.sqrt(1 - skew * ratios[best] + (kurt - 1) / 4 * ratios[best] ** 2)
        assert odds.deflated_sharpe_ratio == pytest.approx(normal.cdf(z))
        assert (odds.cscv_splits, odds.cscv_combinations) == (4, 6)
        assert odds.probability_of_backtest_overfitting == pytest.approx(
            _pbo_by_definition(matrix, 4)
        )

        # A chosen metric and a single axis: one row, the other axis folded into its best.
        by_drawdown = await service.stub.AnalyzeSweep(
            pb.AnalyzeSweepRequest(
                name=sweep.name, metric=pb.RANK_METRIC_MAX_DRAWDOWN, x_parameter="slow_period"
            )
        )
        assert by_drawdown.metric == pb.RANK_METRIC_MAX_DRAWDOWN
        assert by_drawdown.heatmap.y_parameter == "fast_period"
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await service.stub.AnalyzeSweep(
                pb.AnalyzeSweepRequest(name=sweep.name, x_parameter="nope")
            )
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "x_parameter" in field_violations(error.value)


async def test_bad_requests_name_their_field(database_url, data_dir):
    async with running_service(database_url, data_dir, workers=0) as service:
        cases = [
            (pb.AnalyzeSweepRequest(name="runs/x"), "name"),
            (pb.AnalyzeSweepRequest(name="sweeps/x", cscv_splits=3), "cscv_splits"),
            (pb.AnalyzeSweepRequest(name="sweeps/x", cscv_splits=22), "cscv_splits"),
            (pb.AnalyzeSweepRequest(name="sweeps/x", metric=999), "metric"),  # type: ignore[arg-type]
        ]
        for request, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await service.stub.AnalyzeSweep(request)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in field_violations(error.value)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await service.stub.AnalyzeSweep(pb.AnalyzeSweepRequest(name="sweeps/nope"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
