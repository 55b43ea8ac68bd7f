"""The runs and sweeps RPCs of BacktestService: proto <-> domain, no SQL (mixed into the servicer)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest.run_control import Runs, SpecRequest
from tapedeck_backtest.runs import (
    DEFAULT_BAR_INTERVAL_NS,
    AccountKind,
    ParameterValue,
    Progress,
    Run,
    RunSpec,
    RunState,
    Stats,
)
from tapedeck_backtest.sweeps import Axis, Sweep, SweepMetric, SweepPoint, ranked
from tapedeck_common.errors import FieldViolation, InvalidArgument, Unavailable
from tapedeck_common.pagination import decode_page_token, encode_page_token, page_size
from tapedeck_common.validation import (
    decimal_string,
    nanos_to_timestamp,
    resource_id,
    time_range_nanos,
)

Context = grpc.aio.ServicerContext[Any, Any]

_STATE_TO_PB = {
    RunState.QUEUED: pb.BACKTEST_STATE_QUEUED,
    RunState.RUNNING: pb.BACKTEST_STATE_RUNNING,
    RunState.SUCCEEDED: pb.BACKTEST_STATE_SUCCEEDED,
    RunState.FAILED: pb.BACKTEST_STATE_FAILED,
    RunState.CANCELLED: pb.BACKTEST_STATE_CANCELLED,
}
_STATE_FROM_PB = {value: key for key, value in _STATE_TO_PB.items()}
_METRIC_FROM_PB = {
    pb.RANK_METRIC_UNSPECIFIED: SweepMetric.SHARPE_RATIO,
    pb.RANK_METRIC_SHARPE_RATIO: SweepMetric.SHARPE_RATIO,
    pb.RANK_METRIC_SORTINO_RATIO: SweepMetric.SORTINO_RATIO,
    pb.RANK_METRIC_TOTAL_RETURN: SweepMetric.TOTAL_RETURN,
    pb.RANK_METRIC_PROFIT_FACTOR: SweepMetric.PROFIT_FACTOR,
    pb.RANK_METRIC_MAX_DRAWDOWN: SweepMetric.MAX_DRAWDOWN,
    pb.RANK_METRIC_WIN_RATE: SweepMetric.WIN_RATE,
}
_METRIC_TO_PB = {
    SweepMetric.SHARPE_RATIO: pb.RANK_METRIC_SHARPE_RATIO,
    SweepMetric.SORTINO_RATIO: pb.RANK_METRIC_SORTINO_RATIO,
    SweepMetric.TOTAL_RETURN: pb.RANK_METRIC_TOTAL_RETURN,
    SweepMetric.PROFIT_FACTOR: pb.RANK_METRIC_PROFIT_FACTOR,
    SweepMetric.MAX_DRAWDOWN: pb.RANK_METRIC_MAX_DRAWDOWN,
    SweepMetric.WIN_RATE: pb.RANK_METRIC_WIN_RATE,
}
_SWEEP_STATE_TO_PB = {
    "RUNNING": pb.SWEEP_STATE_RUNNING,
    "SUCCEEDED": pb.SWEEP_STATE_SUCCEEDED,
    "CANCELLED": pb.SWEEP_STATE_CANCELLED,
}
_MAX_PAGE = 1000


# --- proto -> domain


def parameter_value(value: pb.ParameterValue, *, field: str) -> ParameterValue:
    """Return a ParameterValue's Python value; an unset oneof is refused."""
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument([FieldViolation(field, "has no value set")])
    result: ParameterValue = getattr(value, kind)
    if isinstance(result, float) and not math.isfinite(result):
        raise InvalidArgument([FieldViolation(field, "must be a finite number")])
    return result


def spec_request(spec: pb.BacktestSpec, *, field: str) -> SpecRequest:
    """Check a BacktestSpec's shape and return it as a SpecRequest."""
    violations: list[FieldViolation] = []

    dataset_id = strategy_id = ""
    try:
        dataset_id = resource_id(spec.dataset, collection="datasets", field=f"{field}.dataset")
    except InvalidArgument as error:
        violations.extend(error.violations)
    try:
        strategy_id = resource_id(spec.strategy, collection="strategies", field=f"{field}.strategy")
    except InvalidArgument as error:
        violations.extend(error.violations)
    parameters: dict[str, ParameterValue] = {}
    for name in sorted(spec.parameters):
        try:
            parameters[name] = parameter_value(
                spec.parameters[name], field=f"{field}.parameters[{name}]"
            )
        except InvalidArgument as error:
            violations.extend(error.violations)
    start = end = None
    try:
        start, end = time_range_nanos(spec.time_range, field=f"{field}.time_range")
    except InvalidArgument as error:
        violations.extend(error.violations)
    balances: list[tuple[str, Decimal]] = []
    for index, money in enumerate(spec.starting_balances):
        try:
            amount = decimal_string(
                money.amount, field=f"{field}.starting_balances[{index}].amount"
            )
            assert amount is not None
            balances.append((money.currency, amount))
        except InvalidArgument as error:
            violations.extend(error.violations)
    interval = DEFAULT_BAR_INTERVAL_NS
    if spec.HasField("bar_interval"):
        interval = spec.bar_interval.seconds * 1_000_000_000 + spec.bar_interval.nanos
        if (
            interval < 1_000_000_000
            or interval > 86_400_000_000_000
            or interval % 1_000_000_000 != 0
        ):
            violations.append(
                FieldViolation(
                    f"{field}.bar_interval", "must be whole seconds between 1 s and 1 day"
                )
            )
    if spec.account_type not in (
        pb.ACCOUNT_TYPE_UNSPECIFIED,
        pb.ACCOUNT_TYPE_CASH,
        pb.ACCOUNT_TYPE_MARGIN,
    ):
        violations.append(FieldViolation(f"{field}.account_type", "is not a known account type"))
    if violations:
        raise InvalidArgument(violations)
    return SpecRequest(
        dataset_id=dataset_id,
        strategy_id=strategy_id,
        parameters=parameters,
        start_ns=start,
        end_ns=end,
        starting_balances=balances,
        account_type=AccountKind.MARGIN
        if spec.account_type == pb.ACCOUNT_TYPE_MARGIN
        else AccountKind.CASH,
        bar_interval_ns=interval,
    )


# --- domain -> proto


def parameter_to_pb(value: object) -> pb.ParameterValue:
    """Return a Python parameter value as a ParameterValue."""
    if isinstance(value, bool):
        return pb.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return pb.ParameterValue(int_value=value)
    if isinstance(value, float):
        return pb.ParameterValue(double_value=value)
    return pb.ParameterValue(string_value=str(value))


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; all are UTC
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def spec_to_pb(spec: RunSpec) -> pb.BacktestSpec:
    """Return a resolved spec as a BacktestSpec."""
    return pb.BacktestSpec(
        dataset=f"datasets/{spec.dataset_id}",
        strategy=f"strategies/{spec.strategy_id}",
        parameters={name: parameter_to_pb(value) for name, value in spec.parameters.items()},
        time_range=common_pb2.TimeRange(
            start_time=nanos_to_timestamp(spec.start_ns),
            end_time=nanos_to_timestamp(spec.end_ns),
        ),
        starting_balances=[
            common_pb2.Money(currency=currency, amount=str(amount))
            for currency, amount in spec.starting_balances
        ],
        account_type=pb.ACCOUNT_TYPE_MARGIN
        if spec.account_type is AccountKind.MARGIN
        else pb.ACCOUNT_TYPE_CASH,
        bar_interval=Duration(
            seconds=spec.bar_interval_ns // 1_000_000_000,
            nanos=spec.bar_interval_ns % 1_000_000_000,
        ),
    )


def progress_to_pb(progress: Progress) -> pb.BacktestProgress:
    """Return progress as a BacktestProgress."""
    message = pb.BacktestProgress(
        percent=progress.percent,
        events_processed=progress.events_processed,
        events_per_second=progress.events_per_second,
        eta=Duration(
            seconds=int(progress.eta_seconds),
            nanos=int((progress.eta_seconds % 1) * 1e9),
        ),
    )
    if progress.simulated_ns:
        message.simulated_time.CopyFrom(nanos_to_timestamp(progress.simulated_ns))
    return message


def stats_to_pb(stats: Stats) -> pb.BacktestStats:
    """Return stats as BacktestStats (undefined ratios are NaN)."""
    return pb.BacktestStats(
        total_return=stats.total_return,
        pnl=stats.pnl,
        sharpe_ratio=stats.sharpe_ratio,
        sortino_ratio=stats.sortino_ratio,
        max_drawdown=stats.max_drawdown,
        win_rate=stats.win_rate,
        profit_factor=stats.profit_factor,
        trade_count=stats.trade_count,
        exposure=stats.exposure,
        fees=stats.fees,
        starting_equity=stats.starting_equity,
        ending_equity=stats.ending_equity,
        fill_count=stats.fill_count,
        run_seconds=stats.run_seconds,
    )


def run_to_pb(run: Run) -> pb.Backtest:
    """Return a run as a Backtest."""
    message = pb.Backtest(
        name=f"backtests/{run.id}",
        spec=spec_to_pb(run.spec),
        state=_STATE_TO_PB[run.state],
        progress=progress_to_pb(run.progress),
        error_message=run.error_message,
        sweep=f"sweeps/{run.sweep_id}" if run.sweep_id else "",
        content_version=run.content_version,
        spec_hash=run.spec_hash,
    )
    if run.stats is not None:
        message.stats.CopyFrom(stats_to_pb(run.stats))
    for name, moment in (
        ("create_time", run.create_time),
        ("start_time", run.start_time),
        ("end_time", run.end_time),
    ):
        stamp = _timestamp(moment)
        if stamp is not None:
            getattr(message, name).CopyFrom(stamp)
    return message


def sweep_result_to_pb(point: SweepPoint, rank: int) -> pb.SweepResult:
    """Return one grid point as a SweepResult."""
    message = pb.SweepResult(
        backtest=f"backtests/{point.run.id}",
        parameters={name: parameter_to_pb(value) for name, value in point.parameters.items()},
        state=_STATE_TO_PB[point.run.state],
        rank=rank,
        error_message=point.run.error_message if point.run.state is RunState.FAILED else "",
    )
    if point.run.stats is not None:
        message.stats.CopyFrom(stats_to_pb(point.run.stats))
    return message


def sweep_to_pb(sweep: Sweep) -> pb.Sweep:
    """Return a sweep with its results ranked best first."""
    message = pb.Sweep(
        name=f"sweeps/{sweep.id}",
        base_spec=spec_to_pb(sweep.base_spec),
        axes=[
            pb.ParameterAxis(name=axis.name, values=[parameter_to_pb(v) for v in axis.values])
            for axis in sweep.axes
        ],
        metric=_METRIC_TO_PB[sweep.metric],
        state=_SWEEP_STATE_TO_PB[sweep.state.value],
        total_runs=sweep.total_runs,
        finished_runs=sweep.finished_runs,
        results=[
            sweep_result_to_pb(point, rank) for point, rank in ranked(sweep.points, sweep.metric)
        ],
    )
    for name, moment in (("create_time", sweep.create_time), ("end_time", sweep.end_time)):
        stamp = _timestamp(moment)
        if stamp is not None:
            getattr(message, name).CopyFrom(stamp)
    return message


def _keyset(token: dict[str, object] | None) -> tuple[datetime, str] | None:
    if token is None:
        return None
    return datetime.fromisoformat(str(token["t"])), str(token["id"])


# --- runs and sweeps ---


class RunRpcs:
    """CreateBacktest, GetBacktest, ListBacktests, CancelBacktest, WatchBacktest and the sweeps."""

    _runs_control: Runs | None = None

    def attach_runs(self, runs: Runs) -> None:
        """Plug in the runs application layer (done by the server's build)."""
        self._runs_control = runs

    @property
    def _runs(self) -> Runs:
        if self._runs_control is None:
            raise Unavailable("runs are not enabled in this process")
        return self._runs_control

    async def CreateBacktest(
        self, request: pb.CreateBacktestRequest, context: Context
    ) -> pb.CreateBacktestResponse:
        """Store a run (QUEUED) or return the finished run with the same spec."""
        if not request.HasField("spec"):
            raise InvalidArgument([FieldViolation("spec", "is required")])
        run, cached = await self._runs.create(spec_request(request.spec, field="spec"))
        return pb.CreateBacktestResponse(backtest=run_to_pb(run), cached=cached)

    async def GetBacktest(
        self, request: pb.GetBacktestRequest, context: Context
    ) -> pb.GetBacktestResponse:
        """Return one run."""
        run_id = resource_id(request.name, collection="backtests")
        return pb.GetBacktestResponse(backtest=run_to_pb(await self._runs.get(run_id)))

    async def ListBacktests(
        self, request: pb.ListBacktestsRequest, context: Context
    ) -> pb.ListBacktestsResponse:
        """Return a page of runs, newest first."""
        limit = page_size(request.page_size, default=50, maximum=_MAX_PAGE)
        states: list[RunState] = []
        for index, state in enumerate(request.states):
            if state not in _STATE_FROM_PB:
                raise InvalidArgument(
                    [FieldViolation(f"states[{index}]", "is not a known backtest state")]
                )
            states.append(_STATE_FROM_PB[state])
        sweep_id = (
            resource_id(request.sweep, collection="sweeps", field="sweep")
            if request.sweep
            else None
        )
        query = f"states={sorted(s.value for s in states)}&sweep={sweep_id}"
        position = decode_page_token(request.page_token, query=query)
        runs = await self._runs.list_runs(
            states=states, sweep_id=sweep_id, after=_keyset(position), limit=limit + 1
        )
        next_token = ""
        if len(runs) > limit:
            runs = runs[:limit]
            last = runs[-1]
            next_token = encode_page_token(
                {"t": last.create_time.isoformat(), "id": last.id}, query=query
            )
        return pb.ListBacktestsResponse(
            backtests=[run_to_pb(run) for run in runs], next_page_token=next_token
        )

    async def CancelBacktest(
        self, request: pb.CancelBacktestRequest, context: Context
    ) -> pb.CancelBacktestResponse:
        """Cancel a queued or running run."""
        run_id = resource_id(request.name, collection="backtests")
        return pb.CancelBacktestResponse(backtest=run_to_pb(await self._runs.cancel(run_id)))

    async def WatchBacktest(
        self, request: pb.WatchBacktestRequest, context: Context
    ) -> AsyncIterator[pb.WatchBacktestResponse]:
        """Stream the run on every change until it reaches a final state."""
        run_id = resource_id(request.name, collection="backtests")
        async for run in self._runs.watch(run_id):
            yield pb.WatchBacktestResponse(backtest=run_to_pb(run))

    async def CreateSweep(
        self, request: pb.CreateSweepRequest, context: Context
    ) -> pb.CreateSweepResponse:
        """Start a sweep over the cartesian product of the axes."""
        if not request.HasField("base_spec"):
            raise InvalidArgument([FieldViolation("base_spec", "is required")])
        spec = spec_request(request.base_spec, field="base_spec")
        axes: list[Axis] = []
        violations: list[FieldViolation] = []
        for index, axis in enumerate(request.axes):
            values: list[ParameterValue] = []
            for position, value in enumerate(axis.values):
                try:
                    values.append(parameter_value(value, field=f"axes[{index}].values[{position}]"))
                except InvalidArgument as error:
                    violations.extend(error.violations)
            axes.append(Axis(name=axis.name, values=values))
        if request.metric not in _METRIC_FROM_PB:
            violations.append(FieldViolation("metric", "is not a known rank metric"))
        if violations:
            raise InvalidArgument(violations)
        sweep = await self._runs.create_sweep(spec, axes, _METRIC_FROM_PB[request.metric])
        return pb.CreateSweepResponse(sweep=sweep_to_pb(sweep))

    async def GetSweep(self, request: pb.GetSweepRequest, context: Context) -> pb.GetSweepResponse:
        """Return one sweep with its ranked results so far."""
        sweep_id = resource_id(request.name, collection="sweeps")
        return pb.GetSweepResponse(sweep=sweep_to_pb(await self._runs.get_sweep(sweep_id)))

    async def ListSweeps(
        self, request: pb.ListSweepsRequest, context: Context
    ) -> pb.ListSweepsResponse:
        """Return a page of sweeps, newest first, without their results."""
        limit = page_size(request.page_size, default=50, maximum=_MAX_PAGE)
        position = decode_page_token(request.page_token, query="sweeps")
        sweeps = await self._runs.list_sweeps(after=_keyset(position), limit=limit + 1)
        next_token = ""
        if len(sweeps) > limit:
            sweeps = sweeps[:limit]
            last = sweeps[-1]
            next_token = encode_page_token(
                {"t": last.create_time.isoformat(), "id": last.id}, query="sweeps"
            )
        return pb.ListSweepsResponse(
            sweeps=[sweep_to_pb(sweep) for sweep in sweeps], next_page_token=next_token
        )

    async def WatchSweep(
        self, request: pb.WatchSweepRequest, context: Context
    ) -> AsyncIterator[pb.WatchSweepResponse]:
        """Stream each result as its run finishes, then the whole ranked sweep."""
        sweep_id = resource_id(request.name, collection="sweeps")
        async for event in self._runs.watch_sweep(sweep_id):
            if isinstance(event, Sweep):
                yield pb.WatchSweepResponse(sweep=sweep_to_pb(event))
            else:
                point, rank = event
                yield pb.WatchSweepResponse(result=sweep_result_to_pb(point, rank))
