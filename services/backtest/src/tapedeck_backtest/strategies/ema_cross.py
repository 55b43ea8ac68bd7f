"""EMA cross: long when the fast EMA is above the slow one; flat (or short) when below."""

from __future__ import annotations

from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.data import Bar
from nautilus_trader.model.enums import OrderSide

from tapedeck_backtest.strategies.base import BarStrategy, BarStrategyConfig


class EMACrossConfig(BarStrategyConfig, frozen=True):
    """Configuration of EMACross."""

    fast_period: int = 10
    slow_period: int = 20


class EMACross(BarStrategy):
    """Trend following on two exponential moving averages of bar closes."""

    def __init__(self, config: EMACrossConfig) -> None:
        super().__init__(config)
        self.fast = ExponentialMovingAverage(config.fast_period)
        self.slow = ExponentialMovingAverage(config.slow_period)
        self._config = config

    def on_start(self) -> None:
        """Register the indicators and subscribe to bars."""
        if not self.load_instrument():
            return
        self.register_indicator_for_bars(self._config.bar_type, self.fast)
        self.register_indicator_for_bars(self._config.bar_type, self.slow)
        self.subscribe_bars(self._config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        """Follow the cross once both averages are warm."""
        if not (self.fast.initialized and self.slow.initialized):
            return
        if self.fast.value > self.slow.value:
            if self.is_short():
                self.close()
            if not self.is_long():
                self.market(OrderSide.BUY)
        elif self.fast.value < self.slow.value:
            if self.is_long():
                self.close()
            if self._config.allow_short and not self.is_short():
                self.market(OrderSide.SELL)

    def on_reset(self) -> None:
        """Forget the indicators' history."""
        self.fast.reset()
        self.slow.reset()
