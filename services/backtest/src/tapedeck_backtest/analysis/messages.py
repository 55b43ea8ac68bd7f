"""Proto <-> domain for sweep analysis; every refusal names its field."""

from __future__ import annotations

import math
from decimal import Decimal

from google.protobuf.duration_pb2 import Duration

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tapedeck.live.v1 import live_pb2
from tapedeck_backtest.analysis.domain import (
    DEFAULT_SPLITS,
    MAX_SPLITS,
    AnalysisQuery,
    Odds,
    ScoredPoint,
    SweepAnalysis,
)
from tapedeck_backtest.analysis.drift import (
    DEFAULT_MAX_ENTRY_GAP_NS,
    MAX_ENTRY_GAP_SECONDS,
    DriftQuery,
    MatchedTrade,
    RoundTrip,
    SessionDrift,
)
from tapedeck_backtest.playback.messages import decimal_text
from tapedeck_backtest.runs.messages import METRICS, run_id, sweep_id
from tapedeck_backtest.runs.sweeps import Axis
from tapedeck_backtest.strategies.messages import parameter_value_to_proto
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import duration_seconds, nanos_to_timestamp

MIN_SPLITS = 4
_MAX_SESSION = 128
_MAX_INSTRUMENT_ID = 64


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


def drift_query(request: pb.CompareWithSessionRequest) -> DriftQuery:
    """Return the comparison a CompareWithSession request asks."""
    violations: list[FieldViolation] = []
    if not request.session:
        violations.append(FieldViolation("session", "is required: a live session's run_id"))
    for name, limit in (("session", _MAX_SESSION), ("instrument_id", _MAX_INSTRUMENT_ID)):
        if len(getattr(request, name)) > limit:
            violations.append(FieldViolation(name, f"is longer than {limit} characters"))
    gap_ns = DEFAULT_MAX_ENTRY_GAP_NS
    if request.HasField("max_entry_gap"):
        try:
            seconds = duration_seconds(
                request.max_entry_gap, field="max_entry_gap", maximum=MAX_ENTRY_GAP_SECONDS
            )
        except InvalidArgument as error:
            violations.extend(error.violations)
        else:
            gap_ns = request.max_entry_gap.ToNanoseconds()
            if seconds == 0:
                violations.append(FieldViolation("max_entry_gap", "must be positive"))
    if violations:
        raise InvalidArgument(violations)
    return DriftQuery(
        run_id=run_id(request.backtest, field="backtest"),
        session=request.session,
        instrument_id=request.instrument_id or None,
        max_entry_gap_ns=gap_ns,
    )


def live_round_trip(trade: live_pb2.SessionTrade) -> RoundTrip:
    """Return a live session's trade (as the live service lists it) as the comparison sees it."""
    return RoundTrip(
        trade_id=trade.position_id,
        long=trade.side == live_pb2.POSITION_SIDE_LONG,
        quantity=Decimal(trade.quantity),
        entry_ns=trade.entry_time.ToNanoseconds(),
        exit_ns=trade.exit_time.ToNanoseconds(),
        entry_price=Decimal(trade.average_entry_price),
        exit_price=Decimal(trade.average_exit_price),
        realized_pnl=Decimal(trade.realized_pnl.amount),
        fees=Decimal(trade.fees),
    )


def drift_to_proto(result: SessionDrift) -> pb.CompareWithSessionResponse:
    """Return the proto of a comparison."""
    drift, summary = result.drift, result.drift.summary
    return pb.CompareWithSessionResponse(
        window=common_pb2.TimeRange(
            start_time=nanos_to_timestamp(result.start_ns),
            end_time=nanos_to_timestamp(result.end_ns),
        ),
        currency=result.currency,
        matched=[_matched(pair) for pair in drift.matched],
        live_only=[_trade(trade) for trade in drift.live_only],
        backtest_only=[_trade(trade) for trade in drift.backtest_only],
        summary=pb.DriftSummary(
            live_pnl=decimal_text(summary.live_pnl),
            backtest_pnl=decimal_text(summary.backtest_pnl),
            pnl_gap=decimal_text(summary.gap),
            missing_trades=decimal_text(summary.missing_trades),
            slippage=decimal_text(summary.slippage),
            fees=decimal_text(summary.fees),
            other=decimal_text(summary.other),
            matched_count=len(drift.matched),
            live_only_count=len(drift.live_only),
            backtest_only_count=len(drift.backtest_only),
        ),
    )


def _matched(pair: MatchedTrade) -> pb.TradeDrift:
    return pb.TradeDrift(
        live=_trade(pair.live),
        backtest=_trade(pair.backtest),
        entry_delay=_signed_duration(pair.entry_delay_ns),
        exit_delay=_signed_duration(pair.exit_delay_ns),
        entry_slippage=decimal_text(pair.entry_slippage),
        exit_slippage=decimal_text(pair.exit_slippage),
        slippage_cost=decimal_text(pair.slippage_cost),
        fee_difference=decimal_text(pair.fee_difference),
        pnl_difference=decimal_text(pair.pnl_difference),
    )


def _trade(trade: RoundTrip) -> pb.DriftTrade:
    return pb.DriftTrade(
        trade_id=trade.trade_id,
        side=pb.TRADE_SIDE_LONG if trade.long else pb.TRADE_SIDE_SHORT,
        quantity=decimal_text(trade.quantity),
        entry_time=nanos_to_timestamp(trade.entry_ns),
        exit_time=nanos_to_timestamp(trade.exit_ns),
        average_entry_price=decimal_text(trade.entry_price),
        average_exit_price=decimal_text(trade.exit_price),
        realized_pnl=decimal_text(trade.realized_pnl),
        fees=decimal_text(trade.fees),
    )


def _signed_duration(nanos: int) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(nanos)
    return duration
