"""Datasets: what an import is asked for and produced, and what a run needs to load it (pure)."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nautilus_trader.model.data import Bar, QuoteTick, TradeTick
from nautilus_trader.model.instruments import Instrument

from tapedeck_backtest import storage
from tapedeck_backtest.datasets.instruments import InstrumentSpec, to_nautilus
from tapedeck_common.errors import FieldViolation, InvalidArgument

MAX_COLUMN_NAME = 200


class DataKind(enum.Enum):
    """The kind of market data a dataset holds; values are stored in the database."""

    TRADES = "trades"
    QUOTES = "quotes"
    BARS = "bars"


class BarConvention(enum.Enum):
    """Which instant a bar file's timestamps name; values are stored in the database."""

    OPEN = "open"  # the bar's open: FXCM, HistData, Binance klines (the default)
    CLOSE = "close"  # the bar's close, NautilusTrader's ts_event


BAR_NS = 60 * 1_000_000_000  # imported bars are one-minute bars


def label_offset_ns(kind: DataKind) -> int:
    """Return a stored row's ts_event minus its label time: a bar's width (close - open), or 0."""
    return BAR_NS if kind is DataKind.BARS else 0


class FileFormat(enum.StrEnum):
    """The format of a raw file."""

    CSV = "csv"
    PARQUET = "parquet"


# The roles (columns) each kind of data needs, and those it may have.
REQUIRED: dict[DataKind, tuple[str, ...]] = {
    DataKind.TRADES: ("ts", "price", "size"),
    DataKind.QUOTES: ("ts", "bid", "ask"),
    DataKind.BARS: ("ts", "open", "high", "low", "close"),
}
OPTIONAL: dict[DataKind, tuple[str, ...]] = {
    DataKind.TRADES: ("side", "buyer_maker", "trade_id"),
    DataKind.QUOTES: ("bid_size", "ask_size"),
    DataKind.BARS: ("volume",),
}


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
    start_ns: int  # the first row's time: a tick's, or a bar's open
    end_ns: int  # the last row's time: a tick's, or a bar's open
    size_bytes: int
    create_time: datetime
    bar_convention: BarConvention | None = None  # bars only: what the file's timestamps named


@dataclass(frozen=True)
class ImportRequest:
    """A validated request to import one raw file."""

    source_path: str
    instrument: InstrumentSpec
    kind: DataKind
    file_format: FileFormat | None  # None: from the file name's extension
    display_name: str
    columns: tuple[tuple[str, str], ...] = ()  # (role, column name or 1-based position), sorted
    bar_convention: BarConvention = BarConvention.OPEN  # bars only

    @property
    def ts_offset_ns(self) -> int:
        """Return what is added to the file's times to store each row at its ts_event."""
        if self.kind is DataKind.BARS and self.bar_convention is BarConvention.OPEN:
            return BAR_NS
        return 0


@dataclass(frozen=True)
class ImportUpdate:
    """One step of an import: progress, or (last) the dataset."""

    rows_read: int
    bytes_read: int
    total_bytes: int
    percent: float
    dataset: Dataset | None = None
    already_imported: bool = False


def stored_bar_type(instrument_id: str) -> str:
    """Return the bar type imported one-minute bars are stored under."""
    return f"{instrument_id}-1-MINUTE-LAST-EXTERNAL"


@dataclass(frozen=True)
class DatasetSource:
    """Everything a backtest worker needs to load a dataset; picklable, builds Nautilus objects lazily."""

    dataset_id: str
    catalog_path: str  # a local path or an fsspec URL (storage.py)
    kind: DataKind
    instrument: InstrumentSpec
    content_hash: str
    start_ns: int
    end_ns: int
    row_count: int
    bar_convention: BarConvention | None = None

    @property
    def instrument_id(self) -> str:
        """Return the NautilusTrader instrument id string."""
        return self.instrument.instrument_id

    @property
    def identity(self) -> str:
        """Return what makes two datasets the same data: content, kind and instrument."""
        # The same bytes imported as another instrument, kind or bar convention are different
        # data; bars stored at their close keep the identity they had before conventions.
        identity = f"{self.content_hash}|{self.kind.value}|{self.instrument.to_json()}"
        if self.bar_convention is BarConvention.OPEN:
            identity += "|bar-open"
        return identity

    @property
    def window_end_ns(self) -> int:
        """Return the end of the half-open window holding every row: its last ts_event + 1 ns."""
        return self.end_ns + label_offset_ns(self.kind) + 1

    @property
    def data_cls(self) -> Any:
        """Return the NautilusTrader data class stored in the catalog."""
        if self.kind is DataKind.TRADES:
            return TradeTick
        if self.kind is DataKind.QUOTES:
            return QuoteTick
        return Bar

    def bar_type(self, interval_seconds: int = 60) -> str:
        """Return the bar type a strategy subscribes to for bars of `interval_seconds`.

        Ticks are aggregated inside the engine (LAST for trades, MID for quotes); stored one-minute
        bars are used directly at 60 s and aggregated (`...-INTERNAL@1-MINUTE-EXTERNAL`) above it.
        """
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        step = _bar_step(interval_seconds)
        if self.kind is DataKind.BARS:
            if interval_seconds == 60:
                return stored_bar_type(self.instrument_id)
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


def dataset_source(dataset: Dataset, *, catalog_dir: str) -> DatasetSource:
    """Return what a run needs to load `dataset` from the catalog."""
    return DatasetSource(
        dataset_id=dataset.id,
        catalog_path=storage.join(catalog_dir, dataset.id),
        kind=dataset.kind,
        instrument=dataset.instrument,
        content_hash=dataset.content_hash,
        start_ns=dataset.start_ns,
        end_ns=dataset.end_ns,
        row_count=dataset.row_count,
        bar_convention=dataset.bar_convention,
    )


def request_key(
    kind: DataKind,
    instrument: InstrumentSpec,
    columns: tuple[tuple[str, str], ...] = (),
    bar_convention: BarConvention = BarConvention.CLOSE,
) -> str:
    """Return the hash of how a file is imported (kind, instrument, columns, bar convention)."""
    how = f"{kind.value}\n{instrument.to_json()}"
    if columns:  # absent for the default layout, so keys from before column mappings still match
        how += "\n" + ";".join(f"{role}={column}" for role, column in columns)
    if kind is DataKind.BARS and bar_convention is BarConvention.OPEN:
        how += "\nbar-open"  # bars at their close keep the keys imports had before conventions
    return hashlib.sha256(how.encode()).hexdigest()


def import_key(
    content_hash: str,
    kind: DataKind,
    instrument: InstrumentSpec,
    columns: tuple[tuple[str, str], ...] = (),
    bar_convention: BarConvention = BarConvention.CLOSE,
) -> str:
    """Return the identity of an import: content, kind, instrument, column mapping, convention."""
    how = request_key(kind, instrument, columns, bar_convention)
    return hashlib.sha256(f"{content_hash}\n{how}".encode()).hexdigest()


def positional_mapping(columns: Mapping[str, str]) -> bool:
    """Return True when a column mapping names 1-based positions (a CSV without a header)."""
    return bool(columns) and all(value.strip().isdigit() for value in columns.values())


def check_column_mapping(
    columns: Mapping[str, str], kind: DataKind, *, field: str = "column_mapping"
) -> None:
    """Refuse roles `kind` does not have, empty names, mixed names and positions, shared columns."""
    roles = (*REQUIRED[kind], *OPTIONAL[kind])
    violations: list[FieldViolation] = []
    for role in sorted(columns):
        column = columns[role].strip()
        if role not in roles:
            violations.append(
                FieldViolation(
                    f"{field}[{role}]",
                    f"is not a role of {kind.value} (one of {', '.join(roles)})",
                )
            )
        elif column == "" or len(column) > MAX_COLUMN_NAME:
            violations.append(
                FieldViolation(
                    f"{field}[{role}]", f"must name a column (1-{MAX_COLUMN_NAME} characters)"
                )
            )
    if any(value.strip().isdigit() for value in columns.values()) and not positional_mapping(
        columns
    ):
        violations.append(
            FieldViolation(field, "must be all column names or all 1-based positions, not both")
        )
    if len({value.strip().lower() for value in columns.values()}) < len(columns):
        violations.append(FieldViolation(field, "gives one column two roles"))
    if violations:
        raise InvalidArgument(violations)
