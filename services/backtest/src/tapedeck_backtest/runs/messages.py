"""Proto <-> domain for runs and sweeps; every refusal names its field."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest.runs.domain import (
    DEFAULT_BAR_INTERVAL_NS,
    MAX_BAR_INTERVAL_NS,
    MIN_BAR_INTERVAL_NS,
    NANOS_PER_SECOND,
    AccountKind,
    Run,
    RunProgress,
    RunSpec,
    RunState,
    SpecRequest,
    Stats,
)
from tapedeck_backtest.runs.search import DEFAULT_PARALLEL
from tapedeck_backtest.runs.stats import MIN_DAILY_RETURNS
from tapedeck_backtest.runs.sweeps import (
    Axis,
    ParameterRange,
    SearchAlgorithm,
    SearchSpec,
    Sweep,
    SweepMetric,
    SweepPoint,
    SweepState,
    ranked,
)
from tapedeck_backtest.runs.walkforward import (
    Fold,
    WalkForward,
    WalkForwardSpec,
    WalkForwardState,
)
from tapedeck_backtest.strategies.messages import parameter_value, parameter_value_to_proto
from tapedeck_backtest.strategies.registry import Scalar
from tapedeck_common.enums import EnumMapping
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.validation import (
    decimal_string,
    nanos_to_timestamp,
    resource_id,
    time_range_nanos,
)

RUN_STATES = EnumMapping(
    pb.BacktestState.DESCRIPTOR,
    {
        pb.BACKTEST_STATE_QUEUED: RunState.QUEUED,
        pb.BACKTEST_STATE_RUNNING: RunState.RUNNING,
        pb.BACKTEST_STATE_SUCCEEDED: RunState.SUCCEEDED,
        pb.BACKTEST_STATE_FAILED: RunState.FAILED,
        pb.BACKTEST_STATE_CANCELLED: RunState.CANCELLED,
    },
)
ACCOUNT_TYPES = EnumMapping(
    pb.AccountType.DESCRIPTOR,
    {pb.ACCOUNT_TYPE_CASH: AccountKind.CASH, pb.ACCOUNT_TYPE_MARGIN: AccountKind.MARGIN},
    unspecified=AccountKind.CASH,
)
METRICS = EnumMapping(
    pb.RankMetric.DESCRIPTOR,
    {
        pb.RANK_METRIC_SHARPE_RATIO: SweepMetric.SHARPE_RATIO,
        pb.RANK_METRIC_SORTINO_RATIO: SweepMetric.SORTINO_RATIO,
        pb.RANK_METRIC_TOTAL_RETURN: SweepMetric.TOTAL_RETURN,
        pb.RANK_METRIC_PROFIT_FACTOR: SweepMetric.PROFIT_FACTOR,
        pb.RANK_METRIC_MAX_DRAWDOWN: SweepMetric.MAX_DRAWDOWN,
        pb.RANK_METRIC_WIN_RATE: SweepMetric.WIN_RATE,
        pb.RANK_METRIC_CAGR: SweepMetric.CAGR,
        pb.RANK_METRIC_CALMAR_RATIO: SweepMetric.CALMAR_RATIO,
        pb.RANK_METRIC_EXPECTANCY: SweepMetric.EXPECTANCY,
    },
    unspecified=SweepMetric.SHARPE_RATIO,
)
ALGORITHMS = EnumMapping(
    pb.SearchAlgorithm.DESCRIPTOR,
    {
        pb.SEARCH_ALGORITHM_GRID: SearchAlgorithm.GRID,
        pb.SEARCH_ALGORITHM_RANDOM: SearchAlgorithm.RANDOM,
        pb.SEARCH_ALGORITHM_TPE: SearchAlgorithm.TPE,
        pb.SEARCH_ALGORITHM_NSGA2: SearchAlgorithm.NSGA2,
    },
    unspecified=SearchAlgorithm.GRID,
)
MAX_WINDOW_NS = 100 * 365 * 86_400 * NANOS_PER_SECOND
NO_WALK_FORWARD = WalkForwardSpec(folds=0, anchored=False, in_sample_ns=0, out_of_sample_ns=0)
WALK_FORWARD_STATES = EnumMapping(
    pb.WalkForwardState.DESCRIPTOR,
    {
        pb.WALK_FORWARD_STATE_RUNNING: WalkForwardState.RUNNING,
        pb.WALK_FORWARD_STATE_SUCCEEDED: WalkForwardState.SUCCEEDED,
        pb.WALK_FORWARD_STATE_FAILED: WalkForwardState.FAILED,
    },
)
SWEEP_STATES = EnumMapping(
    pb.SweepState.DESCRIPTOR,
    {
        pb.SWEEP_STATE_RUNNING: SweepState.RUNNING,
        pb.SWEEP_STATE_SUCCEEDED: SweepState.SUCCEEDED,
        pb.SWEEP_STATE_CANCELLED: SweepState.CANCELLED,
    },
)


# --- proto -> domain


def run_id(name: str, *, field: str = "name") -> str:
    """Return the id of a `backtests/{id}` name."""
    return resource_id(name, collection="backtests", field=field)


def sweep_id(name: str, *, field: str = "name") -> str:
    """Return the id of a `sweeps/{id}` name."""
    return resource_id(name, collection="sweeps", field=field)


def states(values: Iterable[int]) -> list[RunState]:
    """Return the run states a list filters on."""
    return [
        RUN_STATES.from_proto(value, field=f"states[{index}]") for index, value in enumerate(values)
    ]


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
    parameters: dict[str, Scalar] = {}
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
        interval = spec.bar_interval.seconds * NANOS_PER_SECOND + spec.bar_interval.nanos
        if (
            not MIN_BAR_INTERVAL_NS <= interval <= MAX_BAR_INTERVAL_NS
            or interval % NANOS_PER_SECOND != 0
        ):
            violations.append(
                FieldViolation(
                    f"{field}.bar_interval", "must be whole seconds between 1 s and 1 day"
                )
            )
    account = AccountKind.CASH
    try:
        account = ACCOUNT_TYPES.from_proto(spec.account_type, field=f"{field}.account_type")
    except InvalidArgument as error:
        violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return SpecRequest(
        dataset_id=dataset_id,
        strategy_id=strategy_id,
        parameters=parameters,
        start_ns=start,
        end_ns=end,
        starting_balances=tuple(balances),
        account_type=account,
        bar_interval_ns=interval,
    )


def axes(values: Iterable[pb.ParameterAxis]) -> tuple[Axis, ...]:
    """Return a sweep's axes, each value typed."""
    result: list[Axis] = []
    violations: list[FieldViolation] = []
    for index, axis in enumerate(values):
        parsed: list[Scalar] = []
        for position, value in enumerate(axis.values):
            try:
                parsed.append(parameter_value(value, field=f"axes[{index}].values[{position}]"))
            except InvalidArgument as error:
                violations.extend(error.violations)
        span = None
        if axis.HasField("range"):
            r = axis.range
            span = ParameterRange(low=r.low, high=r.high, step=r.step, log=r.log)
        result.append(Axis(name=axis.name, values=tuple(parsed), range=span))
    if violations:
        raise InvalidArgument(violations)
    return tuple(result)


def walk_forward_id(name: str, *, field: str = "name") -> str:
    """Return the id of a `walkForwards/{id}` name."""
    return resource_id(name, collection="walkForwards", field=field)


def _duration_ns(value: Duration, *, field: str) -> int:
    nanos = value.seconds * NANOS_PER_SECOND + value.nanos
    if not 0 < nanos <= MAX_WINDOW_NS:
        raise InvalidArgument([FieldViolation(field, "must be positive and at most 100 years")])
    return nanos


def walk_forward_spec(message: pb.WalkForwardSpec) -> WalkForwardSpec:
    """Return how a walk-forward cuts its window."""
    field = "walk_forward"
    violations: list[FieldViolation] = []
    lengths = []
    for name in ("in_sample_duration", "out_of_sample_duration"):
        try:
            lengths.append(_duration_ns(getattr(message, name), field=f"{field}.{name}"))
        except InvalidArgument as error:
            violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return WalkForwardSpec(message.folds, message.anchored, lengths[0], lengths[1])


@dataclass(frozen=True)
class SweepParts:
    """What CreateSweep and CreateWalkForward share, parsed; `walk_forward` for the latter."""

    spec: SpecRequest
    axes: tuple[Axis, ...]
    metric: SweepMetric
    search: SearchSpec | None
    walk_forward: WalkForwardSpec


def sweep_parts(
    request: pb.CreateSweepRequest | pb.CreateWalkForwardRequest,
    *,
    walk_forward: pb.WalkForwardSpec | None = None,
) -> SweepParts:
    """Parse a sweep's (or, with `walk_forward`, a walk-forward's) request, naming every wrong
    field at once."""
    if not request.HasField("base_spec"):
        raise InvalidArgument([FieldViolation("base_spec", "is required")])
    spec = spec_request(request.base_spec, field="base_spec")
    violations: list[FieldViolation] = []
    parts = SweepParts(
        spec=spec,
        axes=_collect(violations, lambda: axes(request.axes), ()),
        metric=_collect(
            violations,
            lambda: METRICS.from_proto(request.metric, field="metric"),
            SweepMetric.SHARPE_RATIO,
        ),
        search=_collect(violations, lambda: search(request), None),
        walk_forward=NO_WALK_FORWARD
        if walk_forward is None
        else _collect(violations, lambda: walk_forward_spec(walk_forward), NO_WALK_FORWARD),
    )
    if violations:
        raise InvalidArgument(violations)
    return parts


def _collect[T](violations: list[FieldViolation], parse: Callable[[], T], default: T) -> T:
    try:
        return parse()
    except InvalidArgument as error:
        violations.extend(error.violations)
        return default


def search(request: pb.CreateSweepRequest | pb.CreateWalkForwardRequest) -> SearchSpec | None:
    """Return the request's search, or None for a grid."""
    if not request.HasField("search"):
        return None
    message = request.search
    return SearchSpec(
        algorithm=ALGORITHMS.from_proto(message.algorithm, field="search.algorithm"),
        trial_budget=message.trial_budget,
        parallel_trials=message.parallel_trials or DEFAULT_PARALLEL,
        seed=message.seed,
        objectives=tuple(
            METRICS.from_proto(m, field=f"search.objectives[{i}]")
            for i, m in enumerate(message.objectives)
        ),
    )


# --- domain -> proto


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def spec_to_proto(spec: RunSpec) -> pb.BacktestSpec:
    """Return a resolved spec as a BacktestSpec."""
    return pb.BacktestSpec(
        dataset=f"datasets/{spec.dataset_id}",
        strategy=f"strategies/{spec.strategy_id}",
        parameters={
            name: parameter_value_to_proto(value) for name, value in spec.parameters.items()
        },
        time_range=common_pb2.TimeRange(
            start_time=nanos_to_timestamp(spec.start_ns),
            end_time=nanos_to_timestamp(spec.end_ns),
        ),
        starting_balances=[
            common_pb2.Money(currency=currency, amount=str(amount))
            for currency, amount in spec.starting_balances
        ],
        account_type=ACCOUNT_TYPES.to_proto(spec.account_type),
        bar_interval=_duration(spec.bar_interval_ns),
    )


def progress_to_proto(progress: RunProgress) -> pb.BacktestProgress:
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


def stats_to_proto(stats: Stats) -> pb.BacktestStats:
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
        periods_per_year=stats.periods_per_year,
        daily_return_count=stats.daily_returns,
        daily_figures_available=stats.daily_returns >= MIN_DAILY_RETURNS,
        cagr=stats.cagr,
        annual_volatility=stats.annual_volatility,
        calmar_ratio=stats.calmar_ratio,
        best_day=stats.best_day,
        worst_day=stats.worst_day,
        max_drawdown_duration=_seconds(stats.max_drawdown_seconds),
        expectancy=stats.expectancy,
        average_win=stats.average_win,
        average_loss=stats.average_loss,
        average_holding_time=_seconds(stats.average_holding_seconds),
    )


def _seconds(value: float) -> Duration | None:
    """Return seconds as a Duration; None (unset) when undefined."""
    if not math.isfinite(value):
        return None
    duration = Duration()
    duration.FromNanoseconds(round(value * 1e9))
    return duration


def run_to_proto(run: Run) -> pb.Backtest:
    """Return a run as a Backtest."""
    message = pb.Backtest(
        name=f"backtests/{run.id}",
        spec=spec_to_proto(run.spec),
        state=RUN_STATES.to_proto(run.state),
        progress=progress_to_proto(run.progress),
        error_message=run.error_message,
        sweep=f"sweeps/{run.sweep_id}" if run.sweep_id else "",
        content_version=run.content_version,
        spec_hash=run.spec_hash,
        create_time=_timestamp(run.create_time),
    )
    if run.stats is not None:
        message.stats.CopyFrom(stats_to_proto(run.stats))
    if run.start_time is not None:
        message.start_time.CopyFrom(_timestamp(run.start_time))
    if run.end_time is not None:
        message.end_time.CopyFrom(_timestamp(run.end_time))
    return message


def sweep_result_to_proto(point: SweepPoint, rank: int) -> pb.SweepResult:
    """Return one grid point as a SweepResult."""
    message = pb.SweepResult(
        backtest=f"backtests/{point.run.id}",
        parameters={
            name: parameter_value_to_proto(value) for name, value in point.parameters.items()
        },
        state=RUN_STATES.to_proto(point.run.state),
        rank=rank,
        error_message=point.run.error_message if point.run.state is RunState.FAILED else "",
    )
    if point.run.stats is not None:
        message.stats.CopyFrom(stats_to_proto(point.run.stats))
    return message


def sweep_to_proto(sweep: Sweep) -> pb.Sweep:
    """Return a sweep with its results ranked best first."""
    message = pb.Sweep(
        name=f"sweeps/{sweep.id}",
        base_spec=spec_to_proto(sweep.base_spec),
        axes=[axis_to_proto(axis) for axis in sweep.axes],
        metric=METRICS.to_proto(sweep.metric),
        state=SWEEP_STATES.to_proto(sweep.state),
        total_runs=sweep.total_runs,
        finished_runs=sweep.finished_runs,
        results=[
            sweep_result_to_proto(point, rank) for point, rank in ranked(sweep.points, sweep.metric)
        ],
        create_time=_timestamp(sweep.create_time),
    )
    if sweep.end_time is not None:
        message.end_time.CopyFrom(_timestamp(sweep.end_time))
    if sweep.search is not None:
        message.search.CopyFrom(
            pb.SearchSpec(
                algorithm=ALGORITHMS.to_proto(sweep.search.algorithm),
                trial_budget=sweep.search.trial_budget,
                parallel_trials=sweep.search.parallel_trials,
                seed=sweep.search.seed,
                objectives=[METRICS.to_proto(m) for m in sweep.search.objectives],
            )
        )
    return message


def _window(start_ns: int, end_ns: int) -> common_pb2.TimeRange:
    return common_pb2.TimeRange(
        start_time=nanos_to_timestamp(start_ns), end_time=nanos_to_timestamp(end_ns)
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def fold_to_proto(fold: Fold, metric: SweepMetric) -> pb.WalkForwardFold:
    """Return one fold with its winner and out-of-sample outcome so far."""
    window = fold.window
    message = pb.WalkForwardFold(
        index=window.index,
        in_sample=_window(window.in_start_ns, window.in_end_ns),
        out_of_sample=_window(window.out_start_ns, window.out_end_ns),
        sweep=f"sweeps/{fold.sweep.id}",
        efficiency=_finite(fold.efficiency),
        error_message=fold.error,
    )
    winner = fold.winner
    if winner is not None:
        parameters, value = winner
        for name, chosen in parameters.items():
            message.best_parameters[name].CopyFrom(parameter_value_to_proto(chosen))
        if math.isfinite(value):
            message.in_sample_value = value
    run = fold.out_run
    if run is not None:
        message.out_of_sample_backtest = f"backtests/{run.id}"
        message.out_of_sample_state = RUN_STATES.to_proto(run.state)
        if run.stats is not None and math.isfinite(run.stats.metric(metric.value)):
            message.out_of_sample_value = run.stats.metric(metric.value)
    return message


def walk_forward_to_proto(walk: WalkForward) -> pb.WalkForward:
    """Return a walk-forward with its folds."""
    message = pb.WalkForward(
        name=f"walkForwards/{walk.id}",
        walk_forward=pb.WalkForwardSpec(
            folds=walk.spec.folds,
            anchored=walk.spec.anchored,
            in_sample_duration=_duration(walk.spec.in_sample_ns),
            out_of_sample_duration=_duration(walk.spec.out_of_sample_ns),
        ),
        base_spec=spec_to_proto(walk.base_spec),
        metric=METRICS.to_proto(walk.metric),
        state=WALK_FORWARD_STATES.to_proto(walk.state),
        folds=[fold_to_proto(fold, walk.metric) for fold in walk.folds],
        efficiency=_finite(walk.efficiency),
        create_time=_timestamp(walk.create_time),
    )
    if walk.end_time is not None:
        message.end_time.CopyFrom(_timestamp(walk.end_time))
    return message


def _duration(nanos: int) -> Duration:
    seconds, remainder = divmod(nanos, NANOS_PER_SECOND)
    return Duration(seconds=seconds, nanos=remainder)


def axis_to_proto(axis: Axis) -> pb.ParameterAxis:
    """Return one axis: its values, or its range."""
    message = pb.ParameterAxis(
        name=axis.name, values=[parameter_value_to_proto(v) for v in axis.values]
    )
    if axis.range is not None:
        span = axis.range
        message.range.CopyFrom(
            pb.ParameterRange(low=span.low, high=span.high, step=span.step, log=span.log)
        )
    return message
