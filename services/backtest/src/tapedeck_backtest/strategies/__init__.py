"""Strategies a backtest can run: the registry, the built-ins, and user strategies."""

from tapedeck_backtest.strategies.builtin import (
    ALLOW_SHORT,
    BUILTIN,
    EMA_CROSS,
    RSI_BOLLINGER,
    TRADE_SIZE,
)
from tapedeck_backtest.strategies.registry import (
    ParameterSpec,
    ParameterType,
    Scalar,
    StrategyDefinition,
    StrategyRegistry,
    validate_parameters,
)
from tapedeck_backtest.strategies.user import add_strategy_paths, load_registry

__all__ = [
    "ALLOW_SHORT",
    "BUILTIN",
    "EMA_CROSS",
    "RSI_BOLLINGER",
    "TRADE_SIZE",
    "ParameterSpec",
    "ParameterType",
    "Scalar",
    "StrategyDefinition",
    "StrategyRegistry",
    "add_strategy_paths",
    "load_registry",
    "validate_parameters",
]
