"""The built-in strategies and their parameters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tapedeck_backtest.strategies.registry import (
    ParameterSpec,
    ParameterType,
    Scalar,
    StrategyDefinition,
)

TRADE_SIZE = ParameterSpec(
    name="trade_size",
    description="Quantity of each market order, in the instrument's base units.",
    type=ParameterType.DOUBLE,
    default=1.0,
    minimum=1e-8,
    maximum=1e9,
)
ALLOW_SHORT = ParameterSpec(
    name="allow_short",
    description="Also sell short on the opposite signal (needs a margin account).",
    type=ParameterType.BOOL,
    default=False,
)


def _fast_below_slow(values: Mapping[str, Scalar]) -> Iterable[tuple[str, str]]:
    fast, slow = values["fast_period"], values["slow_period"]
    assert isinstance(fast, int)
    assert isinstance(slow, int)
    if fast >= slow:
        yield "fast_period", f"must be less than slow_period ({slow})"


def _lower_below_upper(values: Mapping[str, Scalar]) -> Iterable[tuple[str, str]]:
    lower, upper = values["rsi_lower"], values["rsi_upper"]
    assert isinstance(lower, float)
    assert isinstance(upper, float)
    if lower >= upper:
        yield "rsi_lower", f"must be less than rsi_upper ({upper:g})"


EMA_CROSS = StrategyDefinition(
    id="ema_cross",
    display_name="EMA cross",
    description=(
        "Trend following: long while the fast EMA of bar closes is above the slow EMA, "
        "flat (or short) while below."
    ),
    strategy_path="tapedeck_backtest.strategies.ema_cross:EMACross",
    config_path="tapedeck_backtest.strategies.ema_cross:EMACrossConfig",
    parameters=(
        ParameterSpec(
            name="fast_period",
            description="Bars in the fast exponential moving average.",
            type=ParameterType.INT,
            default=10,
            minimum=2,
            maximum=500,
        ),
        ParameterSpec(
            name="slow_period",
            description="Bars in the slow exponential moving average; more than fast_period.",
            type=ParameterType.INT,
            default=20,
            minimum=3,
            maximum=2000,
        ),
        TRADE_SIZE,
        ALLOW_SHORT,
    ),
    rules=(_fast_below_slow,),
)

RSI_BOLLINGER = StrategyDefinition(
    id="rsi_bollinger",
    display_name="RSI / Bollinger mean reversion",
    description=(
        "Mean reversion: buy a close below the lower Bollinger band while RSI is oversold "
        "(sell short above the upper band while overbought, if allowed); exit at the middle band."
    ),
    strategy_path="tapedeck_backtest.strategies.rsi_bollinger:RSIBollinger",
    config_path="tapedeck_backtest.strategies.rsi_bollinger:RSIBollingerConfig",
    parameters=(
        ParameterSpec(
            name="rsi_period",
            description="Bars in the relative strength index (Wilder).",
            type=ParameterType.INT,
            default=14,
            minimum=2,
            maximum=200,
        ),
        ParameterSpec(
            name="bb_period",
            description="Bars in the Bollinger moving average and deviation.",
            type=ParameterType.INT,
            default=20,
            minimum=5,
            maximum=500,
        ),
        ParameterSpec(
            name="bb_std",
            description="Width of the Bollinger bands in standard deviations.",
            type=ParameterType.DOUBLE,
            default=2.0,
            minimum=0.5,
            maximum=5.0,
        ),
        ParameterSpec(
            name="rsi_lower",
            description="RSI (0-100) below which a long entry is allowed.",
            type=ParameterType.DOUBLE,
            default=30.0,
            minimum=1.0,
            maximum=50.0,
        ),
        ParameterSpec(
            name="rsi_upper",
            description="RSI (0-100) above which a short entry is allowed.",
            type=ParameterType.DOUBLE,
            default=70.0,
            minimum=50.0,
            maximum=99.0,
        ),
        TRADE_SIZE,
        ALLOW_SHORT,
    ),
    rules=(_lower_below_upper,),
)

BUILTIN = (EMA_CROSS, RSI_BOLLINGER)
