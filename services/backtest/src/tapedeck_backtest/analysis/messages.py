"""Proto <-> domain for sweep analysis; every refusal names its field."""

from __future__ import annotations

import math

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.analysis.domain import (
    DEFAULT_SPLITS,
    MAX_SPLITS,
    AnalysisQuery,
    Odds,
    ScoredPoint,
    SweepAnalysis,
)
from tapedeck_backtest.runs.messages import METRICS, sweep_id
from tapedeck_backtest.runs.sweeps import Axis
from tapedeck_backtest.strategies.messages import parameter_value_to_proto
from tapedeck_common.errors import FieldViolation, InvalidArgument

MIN_SPLITS = 4


def analysis_query(request: pb.AnalyzeSweepRequest) -> AnalysisQuery:
    """Return the query an AnalyzeSweep request asks."""
    splits = request.cscv_splits or DEFAULT_SPLITS
    if splits % 2 or not MIN_SPLITS <= splits <= MAX_SPLITS:
        raise InvalidArgument(
            [
                FieldViolation(
                    "cscv_splits",
                    f"must be an even number from {MIN_SPLITS} to {MAX_SPLITS}, got {splits}",
                )
            ]
        )
    metric = METRICS.from_proto(request.metric, field="metric") if request.metric else None
    return AnalysisQuery(
        sweep_id=sweep_id(request.name),
        metric=metric,
        x_parameter=request.x_parameter,
        y_parameter=request.y_parameter,
        splits=splits,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _point(point: ScoredPoint) -> pb.ScoredPoint:
    return pb.ScoredPoint(
        backtest=f"backtests/{point.run_id}",
        value=_finite(point.value),
        neighbourhood_score=_finite(point.neighbourhood),
        rank=point.rank,
        neighbourhood_rank=point.neighbourhood_rank,
        parameters={name: parameter_value_to_proto(v) for name, v in point.parameters.items()},
    )


def _values(axis: Axis | None) -> list[pb.ParameterValue]:
    return [] if axis is None else [parameter_value_to_proto(v) for v in axis.values]


def _odds(odds: Odds) -> pb.OverfittingOdds:
    message = pb.OverfittingOdds(
        unavailable_reason=odds.reason,
        period=odds.period,
        observations=odds.observations,
        best_backtest=f"backtests/{odds.best_run_id}" if odds.best_run_id else "",
    )
    if odds.deflated is not None:
        message.best_sharpe_ratio = odds.deflated.sharpe_ratio
        message.trials = odds.deflated.trials
        message.sharpe_ratio_variance = odds.deflated.sharpe_variance
        message.expected_max_sharpe_ratio = odds.deflated.expected_max_sharpe
        probability = _finite(odds.deflated.probability)
        if probability is not None:
            message.deflated_sharpe_ratio = probability
    if odds.overfitting is not None:
        message.probability_of_backtest_overfitting = odds.overfitting.probability
        message.cscv_splits = odds.overfitting.splits
        message.cscv_combinations = odds.overfitting.combinations
    return message


def analysis_to_proto(analysis: SweepAnalysis) -> pb.AnalyzeSweepResponse:
    """Return the analysis of a sweep."""
    heatmap = analysis.heatmap
    return pb.AnalyzeSweepResponse(
        metric=METRICS.to_proto(analysis.metric),
        points=[_point(point) for point in analysis.points],
        heatmap=pb.SweepHeatmap(
            x_parameter=heatmap.x_axis.name,
            x_values=_values(heatmap.x_axis),
            y_parameter="" if heatmap.y_axis is None else heatmap.y_axis.name,
            y_values=_values(heatmap.y_axis),
            cells=[
                pb.HeatmapCell(x_index=c.x_index, y_index=c.y_index, point=_point(c.point))
                for c in heatmap.cells
            ],
        ),
        odds=_odds(analysis.odds),
    )
