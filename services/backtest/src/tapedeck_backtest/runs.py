"""Backtest runs as domain objects: the resolved spec, its hash, states, progress and stats."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

ParameterValue = bool | int | float | str

# Bump when the engine or the result files change meaning: older cached runs stop matching.
RESULTS_FORMAT = "nautilus_trader-1.221.0/results-1"

DEFAULT_BAR_INTERVAL_NS = 60_000_000_000


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
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class AccountKind(StrEnum):
    """The venue account type of a run."""

    CASH = "CASH"
    MARGIN = "MARGIN"


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's result, with defaults and the window resolved."""

    dataset_id: str
    strategy_id: str
    parameters: dict[str, ParameterValue]
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

    def with_parameters(self, parameters: dict[str, ParameterValue]) -> RunSpec:
        """Return the same spec with other parameter values."""
        return RunSpec(
            dataset_id=self.dataset_id,
            strategy_id=self.strategy_id,
            parameters=parameters,
            start_ns=self.start_ns,
            end_ns=self.end_ns,
            starting_balances=self.starting_balances,
            account_type=self.account_type,
            bar_interval_ns=self.bar_interval_ns,
        )


def normalize_balances(balances: list[tuple[str, Decimal]]) -> tuple[tuple[str, Decimal], ...]:
    """Return balances sorted by currency with trailing zeros dropped, so equal money hashes equal."""
    return tuple(sorted((c, a.normalize() if a != 0 else Decimal(0)) for c, a in balances))


def spec_hash(spec: RunSpec, *, dataset_content_hash: str) -> str:
    """Hash what determines a result: the data's content (not its id), the spec and the engine."""
    body = spec.to_dict()
    del body["dataset_id"]
    body["dataset_content_hash"] = dataset_content_hash
    body["results_format"] = RESULTS_FORMAT
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Progress:
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
    def from_json(cls, text: str | None) -> Progress:
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

    def to_json(self) -> str:
        """Return the stats as JSON; non-finite ratios are stored as null."""
        return json.dumps(
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Stats:
        """Parse what `to_json` wrote; null ratios come back as NaN."""
        raw: dict[str, Any] = json.loads(text)
        values: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in raw.items()}
        return cls(**values)

    def metric(self, name: str) -> float:
        """Return one statistic by name as a float."""
        value = getattr(self, name)
        return float(value)


@dataclass
class Run:
    """A run as stored."""

    id: str
    spec: RunSpec
    spec_hash: str
    state: RunState
    create_time: datetime
    content_version: str
    sweep_id: str | None = None
    progress: Progress = field(default_factory=Progress)
    stats: Stats | None = None
    error_message: str = ""
    attempts: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None


def running_content_version(run_id: str, state: RunState, attempts: int) -> str:
    """Return the content version of a run whose results are not final yet."""
    return f"{state.value.lower()}-{attempts}"


def final_content_version(run_id: str, state: RunState, stats_json: str | None) -> str:
    """Return the content version fixed when a run ends: a hash of what it produced."""
    digest = hashlib.sha256(f"{run_id}|{state.value}|{stats_json or ''}".encode()).hexdigest()
    return f"{state.value.lower()}-{digest[:16]}"
