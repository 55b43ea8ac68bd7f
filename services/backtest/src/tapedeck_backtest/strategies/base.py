"""What every built-in strategy shares: instrument lookup, market orders, flat on stop."""

from __future__ import annotations

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.trading.strategy import Strategy


class BarStrategyConfig(StrategyConfig, frozen=True):
    """Fields every Tapedeck strategy config has; runs fill in instrument_id and bar_type."""

    instrument_id: InstrumentId
    bar_type: BarType
    trade_size: float = 1.0
    allow_short: bool = False


class BarStrategy(Strategy):  # type: ignore[misc]  # nautilus_trader ships no type stubs
    """A strategy that trades one instrument on bars with market orders."""

    def __init__(self, config: BarStrategyConfig) -> None:
        super().__init__(config)
        self._instrument: Instrument | None = None

    @property
    def instrument(self) -> Instrument:
        """Return the traded instrument (known after start)."""
        assert self._instrument is not None, "strategy not started"
        return self._instrument

    def load_instrument(self) -> bool:
        """Look the instrument up in the cache; stop the strategy if it is missing."""
        self._instrument = self.cache.instrument(self.config.instrument_id)
        if self._instrument is None:
            self.log.error(f"instrument {self.config.instrument_id} is not in the cache")
            self.stop()
            return False
        return True

    def is_flat(self) -> bool:
        """Return True without an open position."""
        return bool(self.portfolio.is_flat(self.config.instrument_id))

    def is_long(self) -> bool:
        """Return True when net long."""
        return bool(self.portfolio.is_net_long(self.config.instrument_id))

    def is_short(self) -> bool:
        """Return True when net short."""
        return bool(self.portfolio.is_net_short(self.config.instrument_id))

    def market(self, side: OrderSide) -> None:
        """Submit a market order of the configured size."""
        order = self.order_factory.market(
            instrument_id=self.config.instrument_id,
            order_side=side,
            quantity=self.instrument.make_qty(self.config.trade_size),
        )
        self.submit_order(order)

    def close(self) -> None:
        """Close every open position of the instrument."""
        self.close_all_positions(self.config.instrument_id)

    def on_stop(self) -> None:
        """Cancel orders and leave the book flat."""
        self.cancel_all_orders(self.config.instrument_id)
        self.close_all_positions(self.config.instrument_id)
