"""Strategies a run can use: typed parameters with defaults and bounds, and their validation."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from nautilus_trader.config import ImportableStrategyConfig

from tapedeck_backtest.datasets.domain import DataKind
from tapedeck_common.errors import FieldViolation, InvalidArgument

Scalar = int | float | bool | str
STRATEGY_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Set by the run, never by a parameter.
RESERVED = frozenset({"instrument_id", "bar_type", "strategy_id", "order_id_tag", "manage_stop"})


class ParameterType(enum.Enum):
    """The type of a strategy parameter."""

    INT = "int"
    DOUBLE = "double"
    BOOL = "bool"
    STRING = "string"


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: type, default, and bounds (numbers) or choices (strings)."""

    name: str
    description: str
    type: ParameterType
    default: Scalar
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, value: Scalar) -> str | None:
        """Return why `value` is not allowed, or None."""
        if self.type is ParameterType.INT:
            if isinstance(value, bool) or not isinstance(value, int):
                return "must be a whole number (int_value)"
        elif self.type is ParameterType.DOUBLE:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "must be a number (double_value)"
            if not math.isfinite(value):
                return "must be finite"
        elif self.type is ParameterType.BOOL:
            if not isinstance(value, bool):
                return "must be true or false (bool_value)"
        elif not isinstance(value, str):
            return "must be text (string_value)"
        if self.type in (ParameterType.INT, ParameterType.DOUBLE):
            assert isinstance(value, int | float)
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {_show(self.minimum)}, got {_show(value)}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {_show(self.maximum)}, got {_show(value)}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        return None


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# Cross-parameter rules: resolved values in, (parameter, why) out.
Rule = Callable[[Mapping[str, Scalar]], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class StrategyDefinition:
    """A NautilusTrader strategy a run can use, and how to configure it.

    The config class receives `instrument_id` and `bar_type` from the run plus every parameter
    by name, so each parameter must be a field of the config class.
    """

    id: str
    display_name: str
    description: str
    strategy_path: str  # "module:Class", importable in a worker process
    config_path: str  # "module:ConfigClass"
    parameters: tuple[ParameterSpec, ...]
    data_kinds: tuple[DataKind, ...] = (DataKind.TRADES, DataKind.QUOTES, DataKind.BARS)
    rules: tuple[Rule, ...] = field(default=())

    def defaults(self) -> dict[str, Scalar]:
        """Return every parameter's default."""
        return {p.name: p.default for p in self.parameters}


class StrategyRegistry:
    """The strategies a service offers, by id."""

    def __init__(self, definitions: Iterable[StrategyDefinition]) -> None:
        self._by_id: dict[str, StrategyDefinition] = {}
        for definition in definitions:
            self.add(definition)

    def add(self, definition: StrategyDefinition) -> None:
        """Add a strategy; its id must be new and its parameters well formed."""
        problems = definition_problems(definition)
        if definition.id in self._by_id:
            problems.append(f"id {definition.id!r} is already taken")
        if problems:
            raise ValueError(f"strategy {definition.id!r}: {'; '.join(problems)}")
        self._by_id[definition.id] = definition

    def list(self) -> list[StrategyDefinition]:
        """Return every strategy, by id."""
        return [self._by_id[key] for key in sorted(self._by_id)]

    def get(self, strategy_id: str) -> StrategyDefinition | None:
        """Return one strategy, or None."""
        return self._by_id.get(strategy_id)

    def require(self, strategy_id: str, *, field: str = "spec.strategy") -> StrategyDefinition:
        """Return one strategy, or raise InvalidArgument naming `field`."""
        definition = self.get(strategy_id)
        if definition is None:
            known = ", ".join(f"strategies/{key}" for key in sorted(self._by_id))
            raise InvalidArgument([FieldViolation(field, f"unknown strategy; one of {known}")])
        return definition

    def validate(
        self,
        strategy_id: str,
        values: Mapping[str, Scalar],
        *,
        field: str = "spec.parameters",
        strategy_field: str = "spec.strategy",
    ) -> dict[str, Scalar]:
        """Return the parameters with defaults filled in, or raise naming each wrong parameter."""
        return validate_parameters(
            self.require(strategy_id, field=strategy_field), values, field=field
        )

    def importable_config(
        self,
        strategy_id: str,
        parameters: Mapping[str, Scalar],
        *,
        instrument_id: str,
        bar_type: str,
    ) -> ImportableStrategyConfig:
        """Return the config a worker hands to NautilusTrader (parameters already validated)."""
        definition = self.require(strategy_id)
        resolved = validate_parameters(definition, parameters)
        return ImportableStrategyConfig(
            strategy_path=definition.strategy_path,
            config_path=definition.config_path,
            config={"instrument_id": instrument_id, "bar_type": bar_type, **resolved},
        )


def validate_parameters(
    definition: StrategyDefinition, values: Mapping[str, Scalar], *, field: str = "spec.parameters"
) -> dict[str, Scalar]:
    """Return `values` over the defaults; refuse unknown, mistyped and out-of-bounds parameters."""
    specs = {p.name: p for p in definition.parameters}
    violations: list[FieldViolation] = []
    resolved = definition.defaults()
    for name in sorted(values):
        value = values[name]
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none"
            violations.append(
                FieldViolation(
                    f"{field}[{name}]", f"is not a parameter of {definition.id} (known: {known})"
                )
            )
            continue
        why = spec.check(value)
        if why is not None:
            violations.append(FieldViolation(f"{field}[{name}]", why))
            continue
        resolved[name] = float(value) if spec.type is ParameterType.DOUBLE else value
    if not violations:
        for rule in definition.rules:
            for name, why in rule(resolved):
                violations.append(FieldViolation(f"{field}[{name}]", why))
    if violations:
        raise InvalidArgument(violations)
    return resolved


def definition_problems(definition: StrategyDefinition) -> list[str]:
    """Return what is wrong with a definition (used for user strategies)."""
    problems: list[str] = []
    if not STRATEGY_ID.fullmatch(definition.id):
        problems.append("id must be lower-case letters, digits and _, starting with a letter")
    for path in (definition.strategy_path, definition.config_path):
        if ":" not in path:
            problems.append(f"{path!r} must look like module:Class")
    seen: set[str] = set()
    for spec in definition.parameters:
        if spec.name in seen:
            problems.append(f"parameter {spec.name} is listed twice")
        seen.add(spec.name)
        if spec.name in RESERVED:
            problems.append(f"parameter {spec.name} is set by the run")
        why = spec.check(spec.default)
        if why is not None:
            problems.append(f"default of {spec.name} {why}")
        if spec.choices and spec.type is not ParameterType.STRING:
            problems.append(f"choices of {spec.name} need a string parameter")
    if not definition.data_kinds:
        problems.append("data_kinds is empty")
    return problems
