"""Datasets: what an import produced, and what a run needs to load it (pure, no I/O)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nautilus_trader.model.data import Bar, QuoteTick, TradeTick
from nautilus_trader.model.instruments import Instrument

from tapedeck_backtest.instruments import InstrumentSpec, to_nautilus


class DataKind(enum.Enum):
    """The kind of market data a dataset holds; values are stored in the database."""

    TRADES = "trades"
    QUOTES = "quotes"
    BARS = "bars"


@dataclass(frozen=True)
class Dataset:
    """An imported dataset: one instrument's ticks or bars in its own catalog directory."""

    id: str
    display_name: str
    instrument: InstrumentSpec
    kind: DataKind
    source_path: str
    content_hash: str
    row_count: int
    start_ns: int
    end_ns: int
    size_bytes: int
    create_time: datetime


@dataclass(frozen=True)
class DatasetSource:
    """Everything a backtest worker needs to load a dataset; picklable, builds Nautilus objects lazily."""

    dataset_id: str
    catalog_path: Path
    kind: DataKind
    instrument: InstrumentSpec
    content_hash: str
    start_ns: int
    end_ns: int
    row_count: int

    @property
    def instrument_id(self) -> str:
        """Return the NautilusTrader instrument id string."""
        return self.instrument.instrument_id

    @property
    def data_cls(self) -> Any:
        """Return the NautilusTrader data class stored in the catalog."""
        if self.kind is DataKind.TRADES:
            return TradeTick
        if self.kind is DataKind.QUOTES:
            return QuoteTick
        return Bar

    @property
    def stored_bar_type(self) -> str | None:
        """Return the bar type of the stored bars (BARS datasets only)."""
        if self.kind is not DataKind.BARS:
            return None
        return f"{self.instrument_id}-1-MINUTE-LAST-EXTERNAL"

    def bar_type(self, interval_seconds: int = 60) -> str:
        """Return the bar type a strategy subscribes to for bars of `interval_seconds`.

        Ticks are aggregated inside the engine (LAST for trades, MID for quotes); stored one-minute
        bars are used directly at 60 s and aggregated (`...-INTERNAL@1-MINUTE-EXTERNAL`) above it.
        """
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        step = _bar_step(interval_seconds)
        if self.kind is DataKind.BARS:
            stored = self.stored_bar_type
            assert stored is not None
            if interval_seconds == 60:
                return stored
            if interval_seconds % 60 != 0:
                raise ValueError("bars datasets can only be aggregated to whole minutes")
            return f"{self.instrument_id}-{step}-LAST-INTERNAL@1-MINUTE-EXTERNAL"
        price = "LAST" if self.kind is DataKind.TRADES else "MID"
        return f"{self.instrument_id}-{step}-{price}-INTERNAL"

    def nautilus_instrument(self) -> Instrument:
        """Return the NautilusTrader instrument (built in the calling process)."""
        return to_nautilus(self.instrument)


def _bar_step(seconds: int) -> str:
    for unit, size in (("DAY", 86_400), ("HOUR", 3_600), ("MINUTE", 60)):
        if seconds % size == 0:
            return f"{seconds // size}-{unit}"
    return f"{seconds}-SECOND"
