"""RSI/Bollinger mean reversion: buy a close below the lower band with RSI oversold, exit at the mean."""

from __future__ import annotations

from nautilus_trader.indicators import BollingerBands, RelativeStrengthIndex
from nautilus_trader.model.data import Bar
from nautilus_trader.model.enums import OrderSide

from tapedeck_backtest.strategies.base import BarStrategy, BarStrategyConfig


class RSIBollingerConfig(BarStrategyConfig, frozen=True):
    """Configuration of RSIBollinger; RSI thresholds are on the usual 0-100 scale."""

    rsi_period: int = 14
    bb_period: int = 20
    bb_std: float = 2.0
    rsi_lower: float = 30.0
    rsi_upper: float = 70.0


class RSIBollinger(BarStrategy):
    """Mean reversion: enter outside the Bollinger bands when RSI agrees, leave at the middle band."""

    def __init__(self, config: RSIBollingerConfig) -> None:
        super().__init__(config)
        self.rsi = RelativeStrengthIndex(config.rsi_period)
        self.bands = BollingerBands(config.bb_period, config.bb_std)
        self._config = config

    def on_start(self) -> None:
        """Register the indicators and subscribe to bars."""
        if not self.load_instrument():
            return
        self.register_indicator_for_bars(self._config.bar_type, self.rsi)
        self.register_indicator_for_bars(self._config.bar_type, self.bands)
        self.subscribe_bars(self._config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        """Enter on stretched prices, exit when price returns to the middle band."""
        if not (self.rsi.initialized and self.bands.initialized):
            return
        close = bar.close.as_double()
        rsi = self.rsi.value * 100.0  # NautilusTrader's RSI is on a 0-1 scale
        if self.is_long():
            if close >= self.bands.middle:
                self.close()
        elif self.is_short():
            if close <= self.bands.middle:
                self.close()
        elif close < self.bands.lower and rsi < self._config.rsi_lower:
            self.market(OrderSide.BUY)
        elif self._config.allow_short and close > self.bands.upper and rsi > self._config.rsi_upper:
            self.market(OrderSide.SELL)

    def on_reset(self) -> None:
        """Forget the indicators' history."""
        self.rsi.reset()
        self.bands.reset()
