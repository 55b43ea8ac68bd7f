"""Backtest runs as domain objects and their rules: specs, states, progress, stats, the books."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from tapedeck_backtest.datasets.domain import DataKind, DatasetSource
from tapedeck_backtest.datasets.instruments import InstrumentKind
from tapedeck_backtest.strategies.registry import Scalar, StrategyRegistry
from tapedeck_common.errors import FieldViolation, InvalidArgument

# Bump when the engine or the result files change meaning: older cached runs stop matching.
RESULTS_FORMAT = "nautilus_trader-1.231.0/results-4"

NANOS_PER_SECOND = 1_000_000_000
MINUTE_NS = 60 * NANOS_PER_SECOND
DEFAULT_BAR_INTERVAL_NS = MINUTE_NS
MIN_BAR_INTERVAL_NS = NANOS_PER_SECOND
MAX_BAR_INTERVAL_NS = 86_400 * NANOS_PER_SECOND


class RunState(StrEnum):
    """Where a run is in its life."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        """Tell whether the run can no longer change."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})


class AccountKind(StrEnum):
    """The venue account type of a run."""

    CASH = "CASH"
    MARGIN = "MARGIN"


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's result, with defaults and the window resolved."""

    dataset_id: str
    strategy_id: str
    parameters: dict[str, Scalar]
    start_ns: int
    end_ns: int
    starting_balances: tuple[tuple[str, Decimal], ...]
    account_type: AccountKind
    bar_interval_ns: int = DEFAULT_BAR_INTERVAL_NS

    def to_json(self) -> str:
        """Return the spec as canonical JSON (sorted keys, balances as decimal strings)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as plain JSON-able values."""
        return {
            "dataset_id": self.dataset_id,
            "strategy_id": self.strategy_id,
            "parameters": {name: self.parameters[name] for name in sorted(self.parameters)},
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "starting_balances": [[c, str(a)] for c, a in self.starting_balances],
            "account_type": self.account_type.value,
            "bar_interval_ns": self.bar_interval_ns,
        }

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Parse what `to_json` wrote."""
        raw = json.loads(text)
        return cls(
            dataset_id=raw["dataset_id"],
            strategy_id=raw["strategy_id"],
            parameters=dict(raw["parameters"]),
            start_ns=int(raw["start_ns"]),
            end_ns=int(raw["end_ns"]),
            starting_balances=tuple((c, Decimal(a)) for c, a in raw["starting_balances"]),
            account_type=AccountKind(raw["account_type"]),
            bar_interval_ns=int(raw["bar_interval_ns"]),
        )


@dataclass(frozen=True)
class SpecRequest:
    """A run's spec as the caller gave it, its shape checked; resolved by `resolve_spec`."""

    dataset_id: str
    strategy_id: str
    parameters: dict[str, Scalar]
    start_ns: int | None
    end_ns: int | None
    starting_balances: tuple[tuple[str, Decimal], ...]
    account_type: AccountKind
    bar_interval_ns: int


def normalize_balances(
    balances: tuple[tuple[str, Decimal], ...],
) -> tuple[tuple[str, Decimal], ...]:
    """Return balances sorted by currency with trailing zeros dropped, so equal money hashes equal."""
    return tuple(sorted((c, a.normalize() if a != 0 else Decimal(0)) for c, a in balances))


def resolve_spec(
    request: SpecRequest, source: DatasetSource, registry: StrategyRegistry, *, field: str
) -> RunSpec:
    """Return the spec with defaults, window and balances resolved, or InvalidArgument.

    The window, half-open, is clipped to the dataset's data; balances must be in the instrument's
    currencies (a perpetual holds only its quote currency); a perpetual needs a MARGIN account;
    bars datasets aggregate to whole minutes only; the strategy must run on the data's kind.
    """
    violations: list[FieldViolation] = []
    # Half-open [start, end) on the engine's clock: a row is in when its ts_event is (a tick's
    # time, a bar's close). Unset bounds cover every row: from the first row's label (a bar's
    # open) to the last ts_event + 1 ns, so a run's own window holds all it processed.
    data_end = source.window_end_ns
    start = source.start_ns if request.start_ns is None else max(request.start_ns, source.start_ns)
    end = data_end if request.end_ns is None else min(request.end_ns, data_end)
    if start >= end:
        violations.append(
            FieldViolation(
                f"{field}.time_range",
                "does not overlap the dataset's data "
                f"([{source.start_ns}, {data_end}) ns since the epoch)",
            )
        )
    instrument = source.instrument
    allowed = {instrument.quote_currency}
    if instrument.kind is not InstrumentKind.PERPETUAL:
        allowed.add(instrument.base_currency)
    if not request.starting_balances:
        violations.append(
            FieldViolation(
                f"{field}.starting_balances",
                f"needs at least one balance, e.g. {instrument.quote_currency}",
            )
        )
    for index, (currency, amount) in enumerate(request.starting_balances):
        if currency not in allowed:
            violations.append(
                FieldViolation(
                    f"{field}.starting_balances[{index}].currency",
                    f"must be one of {sorted(allowed)} for {instrument.instrument_id}",
                )
            )
        if amount < 0:
            violations.append(
                FieldViolation(f"{field}.starting_balances[{index}].amount", "must not be negative")
            )
    if len({c for c, _ in request.starting_balances}) != len(request.starting_balances):
        violations.append(FieldViolation(f"{field}.starting_balances", "names a currency twice"))
    if request.account_type is AccountKind.CASH and instrument.kind is InstrumentKind.PERPETUAL:
        violations.append(
            FieldViolation(f"{field}.account_type", "a perpetual needs a MARGIN account")
        )
    if source.kind is DataKind.BARS and request.bar_interval_ns % MINUTE_NS != 0:
        violations.append(
            FieldViolation(
                f"{field}.bar_interval", "must be whole minutes for a one-minute bars dataset"
            )
        )
    parameters: dict[str, Scalar] = {}
    try:
        parameters = registry.validate(
            request.strategy_id,
            request.parameters,
            field=f"{field}.parameters",
            strategy_field=f"{field}.strategy",
        )
        if source.kind not in registry.require(request.strategy_id).data_kinds:
            violations.append(
                FieldViolation(f"{field}.strategy", f"cannot run on {source.kind.value} data")
            )
    except InvalidArgument as error:
        violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return RunSpec(
        dataset_id=request.dataset_id,
        strategy_id=request.strategy_id,
        parameters=parameters,
        start_ns=start,
        end_ns=end,
        starting_balances=normalize_balances(request.starting_balances),
        account_type=request.account_type,
        bar_interval_ns=request.bar_interval_ns,
    )


def spec_hash(spec: RunSpec, *, data_identity: str) -> str:
    """Hash what determines a result: the data (not the dataset's id), the spec and the engine."""
    body = spec.to_dict()
    del body["dataset_id"]
    body["dataset_content_hash"] = data_identity
    body["results_format"] = RESULTS_FORMAT
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RunProgress:
    """How far a running run has got."""

    percent: float = 0.0
    events_processed: int = 0
    events_per_second: float = 0.0
    eta_seconds: float = 0.0
    simulated_ns: int = 0

    def to_json(self) -> str:
        """Return the progress as JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> RunProgress:
        """Parse what `to_json` wrote; None gives no progress."""
        return cls() if text is None else cls(**json.loads(text))


@dataclass(frozen=True)
class Stats:
    """Summary statistics of a finished run; money as decimal strings."""

    total_return: float
    pnl: str
    sharpe_ratio: float
    sortino_ratio: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    trade_count: int
    exposure: float
    fees: str
    starting_equity: str
    ending_equity: str
    fill_count: int
    run_seconds: float
    # Added with the daily statistics; runs stored before them read these as n/a.
    periods_per_year: int = 0  # 252 (weekday markets) or 365 (every day), 0 before the change
    daily_returns: int = 0  # daily figures are NaN (n/a) below stats.MIN_DAILY_RETURNS
    cagr: float = math.nan
    annual_volatility: float = math.nan
    calmar_ratio: float = math.nan
    best_day: float = math.nan
    worst_day: float = math.nan
    max_drawdown_seconds: float = math.nan
    expectancy: float = math.nan
    average_win: float = math.nan
    average_loss: float = math.nan
    average_holding_seconds: float = math.nan

    def to_json(self) -> str:
        """Return the stats as JSON; non-finite ratios are stored as null."""
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Return the stats as JSON-able values; non-finite ratios (undefined) are None."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_json(cls, text: str) -> Stats:
        """Parse what `to_json` wrote; null ratios come back as NaN."""
        raw: dict[str, Any] = json.loads(text)
        values: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in raw.items()}
        return cls(**values)

    def metric(self, name: str) -> float:
        """Return one statistic by name as a float."""
        return float(getattr(self, name))


@dataclass(frozen=True)
class Run:
    """A run as stored."""

    id: str
    spec: RunSpec
    spec_hash: str
    state: RunState
    create_time: datetime
    content_version: str
    sweep_id: str | None = None
    progress: RunProgress = field(default_factory=RunProgress)
    stats: Stats | None = None
    error_message: str = ""
    attempts: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class RunFacts:
    """What a run's live events say about it besides its state: spec, symbol, sweep."""

    spec: RunSpec
    symbol: str
    sweep_id: str | None


def new_run(run_id: str, spec: RunSpec, digest: str, *, sweep_id: str | None, now: datetime) -> Run:
    """Return a run just queued."""
    return Run(
        id=run_id,
        spec=spec,
        spec_hash=digest,
        state=RunState.QUEUED,
        create_time=now,
        content_version=running_content_version(RunState.QUEUED, 0),
        sweep_id=sweep_id,
    )


def refused_run(
    run_id: str, spec: RunSpec, digest: str, refusal: str, *, sweep_id: str, now: datetime
) -> Run:
    """Return a search's trial whose parameters the strategy refuses: FAILED at once, saying why."""
    return Run(
        id=run_id,
        spec=spec,
        spec_hash=digest,
        state=RunState.FAILED,
        create_time=now,
        content_version=final_content_version(run_id, RunState.FAILED, None),
        sweep_id=sweep_id,
        error_message=f"parameters refused: {refusal}",
        end_time=now,
    )


def running_content_version(state: RunState, attempts: int) -> str:
    """Return the content version of a run whose results are not final yet."""
    return f"{state.value.lower()}-{attempts}"


def final_content_version(run_id: str, state: RunState, stats_json: str | None) -> str:
    """Return the content version fixed when a run ends: a hash of what it produced."""
    digest = hashlib.sha256(f"{run_id}|{state.value}|{stats_json or ''}".encode()).hexdigest()
    return f"{state.value.lower()}-{digest[:16]}"


@dataclass(frozen=True)
class Release:
    """What becomes of a RUNNING run whose worker is gone: queued again, or failed."""

    state: RunState
    attempts: int
    error_message: str


def release(*, attempts: int, max_attempts: int, count_attempt: bool, reason: str) -> Release:
    """Re-queue a run until it used `max_attempts`, then fail it with the reason.

    `count_attempt=False` (a graceful shutdown) gives the attempt back and always re-queues.
    """
    if not count_attempt:
        return Release(RunState.QUEUED, max(attempts - 1, 0), f"re-queued: {reason}")
    if attempts < max_attempts:
        return Release(RunState.QUEUED, attempts, f"re-queued: {reason}")
    return Release(RunState.FAILED, attempts, f"{reason} (after {attempts} attempts)")


@dataclass(frozen=True)
class Fill:
    """One execution, exact."""

    time: int
    fill_id: str
    order_id: str
    position_id: str
    instrument_id: str
    side: str  # BUY or SELL
    quantity: Decimal
    price: Decimal
    commission: Decimal
    commission_currency: str

    @property
    def signed_quantity(self) -> Decimal:
        """Return the quantity, negative for a sale."""
        return self.quantity if self.side == "BUY" else -self.quantity


_ZERO = Decimal(0)


@dataclass(frozen=True)
class Holdings:
    """A run's portfolio after some fills: money in the quote currency, PnL gross of fees."""

    cash: Decimal
    base_balance: Decimal
    position: Decimal = _ZERO
    average_price: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    fees: Decimal = _ZERO

    @classmethod
    def starting(
        cls,
        balances: tuple[tuple[str, Decimal], ...],
        *,
        quote_currency: str,
        base_currency: str | None,
    ) -> Holdings:
        """Return the holdings before any fill: the starting balances of the two currencies."""
        by_currency = dict(balances)
        base = _ZERO if base_currency is None else by_currency.get(base_currency, _ZERO)
        return cls(cash=by_currency.get(quote_currency, _ZERO), base_balance=base)


def book(
    holdings: Holdings, fill: Fill, *, account: AccountKind, base_currency: str | None
) -> Holdings:
    """Return the holdings after a fill: netting with average cost.

    The part of a fill that reduces the position realizes PnL at the average price; a fill that
    flips the position opens the remainder at its price. A commission in the base currency comes
    off the base balance (valued at the fill price in `fees`), any other off the cash. A CASH
    account pays for the base it buys; a MARGIN account books only realized PnL to cash.
    """
    signed = fill.signed_quantity
    cash, base, fees = holdings.cash, holdings.base_balance, holdings.fees
    if base_currency is not None and fill.commission_currency == base_currency:
        base -= fill.commission
        fees += fill.commission * fill.price
    else:
        cash -= fill.commission
        fees += fill.commission
    position, average = holdings.position, holdings.average_price
    if position == 0 or (position > 0) == (signed > 0):
        total = position + signed
        average = (average * abs(position) + fill.price * abs(signed)) / abs(total)
        position = total
        realized = _ZERO
    else:
        closed = min(abs(signed), abs(position))
        direction = Decimal(1) if position > 0 else Decimal(-1)
        realized = closed * (fill.price - average) * direction
        position += signed
        if position == 0:
            average = _ZERO
        elif (position > 0) != (direction > 0):
            average = fill.price  # flipped: the remainder opened at this price
    if account is AccountKind.CASH:
        cash -= signed * fill.price
        base += signed
    else:
        cash += realized
    return Holdings(
        cash=cash,
        base_balance=base,
        position=position,
        average_price=average,
        realized_pnl=holdings.realized_pnl + realized,
        fees=fees,
    )


def equity[Number: (Decimal, npt.NDArray[np.float64])](
    account: AccountKind,
    *,
    cash: Number,
    base: Number,
    position: Number,
    average_price: Number,
    mark: Number,
) -> Number:
    """Value a portfolio at `mark`: cash and base balance, plus (MARGIN) the open position's PnL.

    CASH: cash + base_balance * mark. MARGIN: the same + position * (mark - average_price).
    Exact for Decimal, element-wise for arrays.
    """
    value = cash + base * mark
    if account is AccountKind.MARGIN:
        value = value + position * (mark - average_price)
    return value
