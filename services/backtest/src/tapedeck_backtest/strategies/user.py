"""User strategies: modules in configured directories that define `TAPEDECK_STRATEGY`.

A directory in BACKTEST_STRATEGY_PATHS is appended to `sys.path` (so a user module never shadows
an installed package), and each `*.py` file in it not starting with `_` is imported by its stem.
A module that defines `TAPEDECK_STRATEGY = StrategyDefinition(...)` offers one strategy whose
`strategy_path`/`config_path` point at its NautilusTrader `Strategy` and `StrategyConfig`
classes, e.g. `"my_breakout:Breakout"`. Worker processes call `add_strategy_paths` with the same
directories before building the strategy. A module that fails to import or is not a valid
definition is logged and skipped; the built-in strategies are always offered.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from nautilus_trader.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from tapedeck_backtest.strategies.builtin import BUILTIN
from tapedeck_backtest.strategies.registry import StrategyDefinition, StrategyRegistry

logger = logging.getLogger(__name__)

ENTRY = "TAPEDECK_STRATEGY"


def add_strategy_paths(paths: Iterable[Path]) -> None:
    """Make user strategy modules importable in this process."""
    for path in paths:
        entry = str(path.resolve())
        if entry not in sys.path:
            sys.path.append(entry)


def _import_class(path: str) -> type:
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not isinstance(cls, type):
        raise TypeError(f"{path} is not a class")
    return cls


def check_importable(definition: StrategyDefinition) -> list[str]:
    """Return what stops a worker from building this strategy."""
    problems: list[str] = []
    try:
        strategy_cls = _import_class(definition.strategy_path)
        config_cls = _import_class(definition.config_path)
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        return [f"cannot import its classes: {error}"]
    if not issubclass(strategy_cls, Strategy):
        problems.append(f"{definition.strategy_path} is not a NautilusTrader Strategy")
    if not issubclass(config_cls, StrategyConfig):
        problems.append(f"{definition.config_path} is not a NautilusTrader StrategyConfig")
    else:
        fields = set(getattr(config_cls, "__struct_fields__", ()))
        for name in ("instrument_id", "bar_type", *(p.name for p in definition.parameters)):
            if name not in fields:
                problems.append(f"{definition.config_path} has no field {name}")
    return problems


def load_user_strategies(paths: Sequence[Path]) -> list[StrategyDefinition]:
    """Import every user strategy module under `paths` and return the valid definitions."""
    add_strategy_paths(paths)
    found: list[StrategyDefinition] = []
    for directory in paths:
        if not directory.is_dir():
            logger.warning("strategy path is not a directory", extra={"path": str(directory)})
            continue
        for file in sorted(directory.glob("*.py")):
            if file.name.startswith("_"):
                continue
            try:
                module = importlib.import_module(file.stem)
            except Exception:
                logger.exception("user strategy module failed to import", extra={"path": str(file)})
                continue
            if module.__file__ is None or Path(module.__file__).resolve() != file.resolve():
                logger.error(
                    "user strategy module is shadowed by another module of the same name",
                    extra={"path": str(file), "module_name": file.stem},
                )
                continue
            definition = getattr(module, ENTRY, None)
            if definition is None:
                continue
            if not isinstance(definition, StrategyDefinition):
                logger.error(f"{ENTRY} is not a StrategyDefinition", extra={"path": str(file)})
                continue
            problems = check_importable(definition)
            if problems:
                logger.error(
                    "user strategy skipped: %s", "; ".join(problems), extra={"path": str(file)}
                )
                continue
            found.append(definition)
    return found


def load_registry(paths: Sequence[Path] = ()) -> StrategyRegistry:
    """Return the built-in strategies plus the valid user strategies under `paths`."""
    registry = StrategyRegistry(BUILTIN)
    for definition in load_user_strategies(paths):
        try:
            registry.add(definition)
        except ValueError as error:
            logger.error("user strategy skipped: %s", error)
    return registry
