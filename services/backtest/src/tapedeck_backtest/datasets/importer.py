"""Stream a raw CSV or Parquet file, batch by batch, into one catalog file in NautilusTrader's schema.

Accepted layouts (column names are matched case-insensitively, surrounding spaces ignored):

- trades: time (`ts`, `timestamp`, `ts_event`, `time`, `datetime`, `date`), `price`, size (`size`,
  `quantity`, `qty`, `amount`, `volume`); optional side (`side`/`aggressor_side`: BUY/SELL, B/S,
  BUYER/SELLER, 1/2, empty for none) or `buyer_maker`/`is_buyer_maker` (true means the seller
  aggressed, as Binance reports it); optional `trade_id` (`id`, `tid`; the 1-based row number
  when absent).
- quotes: time, bid (`bid`, `bid_price`), ask (`ask`, `ask_price`); optional `bid_size`/`ask_size`
  (`bid_qty`, `ask_qty`, `bid_volume`, `ask_volume`; 1,000,000 when absent, as NautilusTrader's
  wrangler does). Other columns (e.g. `symbol`) are ignored.
- bars (one minute): time, `open`, `high`, `low`, `close`, optional `volume` (1,000,000 when
  absent); the time is stored as the bar's `ts_event`.
- A CSV whose first line names none of these columns has no header; its columns are then, in
  order: trades `ts, price, size[, side]`; quotes `ts, bid, ask[, ignored...]` (HistData);
  bars `ts, open, high, low, close[, volume]`.

Times: Parquet timestamps; integers or digit strings since the epoch (the unit taken from the
first value's magnitude: s, ms, us or ns); ISO 8601 text with or without a zone (no zone means
UTC); HistData's `YYYYMMDD HHMMSSmmm` (taken as UTC). Rows must be in time order.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from nautilus_trader.model.objects import PRICE_MAX, QUANTITY_MAX

from tapedeck_backtest.datasets.catalog import (
    CatalogFileWriter,
    WrittenFile,
    data_directory,
    fixed128,
    scaled_units,
    schema_for,
)
from tapedeck_backtest.datasets.domain import (
    OPTIONAL,
    REQUIRED,
    DataKind,
    FileFormat,
    positional_mapping,
)
from tapedeck_backtest.datasets.instruments import InstrumentSpec

BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 4 << 20
HASH_CHUNK_BYTES = 8 << 20
DEFAULT_VOLUME = 1_000_000.0
MAX_TRADE_ID_LENGTH = 36  # NautilusTrader's TradeId limit

ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "ts_event", "time", "datetime", "date"),
    "price": ("price",),
    "size": ("size", "quantity", "qty", "amount", "volume"),
    "side": ("side", "aggressor_side"),
    "buyer_maker": ("buyer_maker", "is_buyer_maker"),
    "trade_id": ("trade_id", "id", "tid"),
    "bid": ("bid", "bid_price"),
    "ask": ("ask", "ask_price"),
    "bid_size": ("bid_size", "bid_qty", "bid_volume"),
    "ask_size": ("ask_size", "ask_qty", "ask_volume"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume", "vol"),
}
POSITIONAL: dict[DataKind, tuple[str, ...]] = {
    DataKind.TRADES: ("ts", "price", "size", "side"),
    DataKind.QUOTES: ("ts", "bid", "ask"),
    DataKind.BARS: ("ts", "open", "high", "low", "close", "volume"),
}

_BUY = {"BUY", "B", "BUYER", "1"}
_SELL = {"SELL", "S", "SELLER", "2"}
_NONE = {"", "NONE", "NO_AGGRESSOR", "0"}
_TRUE = {"TRUE", "T", "1", "YES"}
_FALSE = {"FALSE", "F", "0", "NO"}
_HISTDATA = r"^(\d{4})(\d{2})(\d{2}) (\d{2})(\d{2})(\d{2})(\d{3})$"
_DIGITS = r"^-?\d+$"
# Times are int64 nanoseconds: the last one is in 2262.
_LAST_NANOS = 2**63 - 1
_PAST_INT64 = "is past 2262-04-11, the last time int64 nanoseconds can hold"


class MalformedInput(Exception):
    """The source file is wrong at a given row and column; the message is safe to show."""

    def __init__(
        self, *, file: str, row: int | None, column: str | None, reason: str, unit: str = "line"
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.reason = reason
        where = file
        if row is not None:
            where += f" {unit} {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {reason}")


class ImportCancelled(Exception):
    """The caller went away; the import stopped between batches."""


@dataclass(frozen=True)
class ConversionProgress:
    """How far a conversion has got."""

    rows: int
    bytes_read: int


ProgressCallback = Callable[[ConversionProgress], None]


def hash_file(
    path: Path,
    *,
    on_bytes: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Return the SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            if cancel is not None and cancel.is_set():
                raise ImportCancelled
            digest.update(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Batch:
    """A batch of raw columns by canonical name, with the 1-based line (or row) of its first row."""

    columns: dict[str, pa.Array]
    first_line: int
    num_rows: int
    unit: str = "line"  # CSV lines count the header; Parquet rows start at 1


def convert_file(
    source: Path,
    *,
    display_path: str,
    file_format: FileFormat,
    kind: DataKind,
    instrument: InstrumentSpec,
    catalog: Path,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    batch_rows: int = BATCH_ROWS,
    columns: Mapping[str, str] | None = None,
) -> WrittenFile:
    """Convert `source` into one catalog file under `catalog`; raise MalformedInput on bad rows.

    `columns` maps roles (ts, price, ...) to the file's column names, or to 1-based positions
    for a CSV without a header; roles it leaves out are found by the accepted names.
    """
    convert = functools.partial(
        _convert,
        display_path=display_path,
        kind=kind,
        instrument=instrument,
        catalog=catalog,
        on_progress=on_progress,
        cancel=cancel,
    )
    if file_format != FileFormat.CSV:
        return convert(_parquet_batches(source, display_path, kind, batch_rows, columns=columns))
    try:
        # CSV numbers parsed by Arrow as numbers: the fast way when the file is clean.
        return convert(
            _csv_batches(source, display_path, kind, batch_rows, typed=True, columns=columns)
        )
    except _TypedParseFailed:
        # Read it again as text, which names the exact line and column that is wrong.
        return convert(
            _csv_batches(source, display_path, kind, batch_rows, typed=False, columns=columns)
        )


class _TypedParseFailed(Exception):
    """A CSV value did not parse as the type expected for its column."""


def _convert(
    batches: Iterator[tuple[_Batch, int]],
    *,
    display_path: str,
    kind: DataKind,
    instrument: InstrumentSpec,
    catalog: Path,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> WrittenFile:
    converter = _Converter(display_path, kind, instrument)
    directory = data_directory(catalog, kind, instrument_id=instrument.instrument_id)
    schema = schema_for(
        kind,
        instrument_id=instrument.instrument_id,
        price_precision=instrument.price_precision,
        size_precision=instrument.size_precision,
    )
    with CatalogFileWriter(directory, schema) as writer:
        for batch, bytes_read in batches:
            if cancel is not None and cancel.is_set():
                raise ImportCancelled
            writer.write(converter.convert(batch, schema))
            if on_progress is not None:
                on_progress(ConversionProgress(rows=writer.rows, bytes_read=bytes_read))
        if writer.rows == 0:
            raise MalformedInput(file=display_path, row=None, column=None, reason="has no rows")
        return writer.close()


# --- reading -----------------------------------------------------------------------------------


def _match_columns(
    names: list[str],
    kind: DataKind,
    display_path: str,
    overrides: Mapping[str, str] | None = None,
    *,
    header_row: int | None = 1,
) -> dict[str, str] | None:
    """Map canonical names to the file's column names; None when the names match nothing."""
    normalized = {name.strip().lower(): name for name in names}
    found: dict[str, str] = {}
    for role, wanted in (overrides or {}).items():
        column = normalized.get(wanted.strip().lower())
        if column is None:
            raise MalformedInput(
                file=display_path,
                row=header_row,
                column=wanted,
                reason=f"is not a column of the file (column_mapping[{role}])",
            )
        found[role] = column
    for canonical in (*REQUIRED[kind], *OPTIONAL[kind]):
        if canonical in found:
            continue
        for alias in ALIASES[canonical]:
            if alias in normalized and normalized[alias] not in found.values():
                found[canonical] = normalized[alias]
                break
    if not found:
        return None
    missing = [name for name in REQUIRED[kind] if name not in found]
    if missing:
        accepted = "; ".join(f"{m}: one of {', '.join(ALIASES[m])}" for m in missing)
        raise MalformedInput(
            file=display_path,
            row=header_row,
            column=None,
            reason=f"missing required column(s) for {kind.value} ({accepted})",
        )
    return found


QUANTITIES = frozenset({"size", "bid_size", "ask_size", "volume"})
NUMERIC = frozenset(
    {
        "price",
        "size",
        "bid",
        "ask",
        "bid_size",
        "ask_size",
        "open",
        "high",
        "low",
        "close",
        "volume",
    }
)


def _csv_batches(
    source: Path,
    display_path: str,
    kind: DataKind,
    batch_rows: int,
    *,
    typed: bool,
    columns: Mapping[str, str] | None = None,
) -> Iterator[tuple[_Batch, int]]:
    with source.open("rb") as handle:
        first_line = handle.readline(1 << 16).decode("utf-8", errors="replace").rstrip("\r\n")
    if first_line.strip() == "":
        raise MalformedInput(file=display_path, row=1, column=None, reason="is empty")
    header = [cell.strip().strip('"') for cell in first_line.split(",")]
    mapping: dict[str, str] | None
    if columns and positional_mapping(columns):
        names = [f"column_{i + 1}" for i in range(len(header))]
        mapping = {}
        for role, position in columns.items():
            index = int(position) - 1
            if not 0 <= index < len(names):
                raise MalformedInput(
                    file=display_path,
                    row=1,
                    column=position,
                    reason=f"is not a position in a line of {len(names)} fields "
                    f"(column_mapping[{role}])",
                )
            mapping[role] = names[index]
        missing = [name for name in REQUIRED[kind] if name not in mapping]
        if missing:
            raise MalformedInput(
                file=display_path,
                row=1,
                column=None,
                reason=f"column_mapping gives no position for {', '.join(missing)}",
            )
        skip, header_lines = 0, 0
    elif (mapping := _match_columns(header, kind, display_path, columns)) is None:
        names = [f"column_{i + 1}" for i in range(len(header))]
        positional = POSITIONAL[kind]
        if len(header) < len(REQUIRED[kind]):
            raise MalformedInput(
                file=display_path,
                row=1,
                column=None,
                reason=f"has no header and {len(header)} columns; {kind.value} needs at least "
                f"{', '.join(REQUIRED[kind])}",
            )
        mapping = {positional[i]: names[i] for i in range(min(len(names), len(positional)))}
        skip, header_lines = 0, 0
    else:
        names = header
        skip, header_lines = 1, 1

    bad_rows: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(row)
        return "skip"

    stream = pa.OSFile(str(source), "rb")
    line = header_lines + 1
    try:
        reader = _open_csv(stream, names, skip, on_invalid, mapping, source, typed=typed)
        for record_batch in _rebatch(reader, batch_rows):
            if bad_rows:
                bad = bad_rows[0]
                raise MalformedInput(
                    file=display_path,
                    row=bad.number,
                    column=None,
                    reason=f"expected {bad.expected_columns} fields, found {bad.actual_columns}",
                )
            columns = {canonical: record_batch.column(name) for canonical, name in mapping.items()}
            yield _Batch(columns, line, record_batch.num_rows), stream.tell()
            line += record_batch.num_rows
        if bad_rows:
            bad = bad_rows[0]
            raise MalformedInput(
                file=display_path,
                row=bad.number,
                column=None,
                reason=f"expected {bad.expected_columns} fields, found {bad.actual_columns}",
            )
    except pa.ArrowInvalid as error:
        if typed:
            raise _TypedParseFailed from None
        raise MalformedInput(
            file=display_path, row=None, column=None, reason=_first_line(str(error))
        ) from None
    finally:
        stream.close()


def _open_csv(
    stream: pa.NativeFile,
    names: list[str],
    skip: int,
    on_invalid: Callable[[pacsv.InvalidRow], str],
    mapping: dict[str, str],
    source: Path,
    *,
    typed: bool,
) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=skip, use_threads=False, block_size=CSV_BLOCK_BYTES
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=_csv_types(source, names, mapping, skip, typed=typed),
            include_columns=list(mapping.values()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _csv_types(
    source: Path, names: list[str], mapping: dict[str, str], skip: int, *, typed: bool
) -> dict[str, pa.DataType]:
    """Return every column as text, or (typed) numbers as float64 and epoch times as int64."""
    types: dict[str, pa.DataType] = {name: pa.string() for name in names}
    if not typed:
        return types
    for canonical, name in mapping.items():
        if canonical in NUMERIC:
            types[name] = pa.float64()
    with source.open("rb") as handle:
        lines = [handle.readline(1 << 16) for _ in range(skip + 1)]
    cells = lines[-1].decode("utf-8", errors="replace").rstrip("\r\n").split(",")
    ts_name = mapping["ts"]
    position = names.index(ts_name)
    if position < len(cells) and re.fullmatch(_DIGITS, cells[position].strip()):
        types[ts_name] = pa.int64()
    return types


def _rebatch(reader: pacsv.CSVStreamingReader, batch_rows: int) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        for offset in range(0, batch.num_rows, batch_rows):
            yield batch.slice(offset, batch_rows)


def _parquet_batches(
    source: Path,
    display_path: str,
    kind: DataKind,
    batch_rows: int,
    *,
    columns: Mapping[str, str] | None = None,
) -> Iterator[tuple[_Batch, int]]:
    try:
        parquet = pq.ParquetFile(str(source))
    except (pa.ArrowInvalid, OSError) as error:
        raise MalformedInput(
            file=display_path,
            row=None,
            column=None,
            reason=f"is not Parquet: {_first_line(str(error))}",
        ) from None
    if columns and positional_mapping(columns):
        raise MalformedInput(
            file=display_path,
            row=None,
            column=None,
            reason="column_mapping positions are for CSV files without a header; name the columns",
        )
    mapping = _match_columns(
        parquet.schema_arrow.names, kind, display_path, columns, header_row=None
    )
    if mapping is None:
        raise MalformedInput(
            file=display_path,
            row=None,
            column=None,
            reason=f"has none of the {kind.value} columns ({', '.join(REQUIRED[kind])})",
        )
    total_rows = max(parquet.metadata.num_rows, 1)
    total_bytes = source.stat().st_size
    row = 1
    with parquet:
        for record_batch in parquet.iter_batches(
            batch_size=batch_rows, columns=list(mapping.values())
        ):
            columns = {canonical: record_batch.column(name) for canonical, name in mapping.items()}
            yield (
                _Batch(columns, row, record_batch.num_rows, "row"),
                total_bytes * (row - 1 + record_batch.num_rows) // total_rows,
            )
            row += record_batch.num_rows


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unreadable"


# --- converting --------------------------------------------------------------------------------


class _Converter:
    """Turn raw batches into catalog batches, checking every value and the time order."""

    def __init__(self, display_path: str, kind: DataKind, instrument: InstrumentSpec) -> None:
        self._file = display_path
        self._kind = kind
        self._instrument = instrument
        self._last_ts: int | None = None
        self._epoch_unit: int | None = None  # nanoseconds per unit of integer timestamps
        self._text_format: str | None = None  # "epoch", "histdata", "naive" or "zoned"

    def _error(self, batch: _Batch, index: int, column: str, reason: str) -> MalformedInput:
        return MalformedInput(
            file=self._file,
            row=batch.first_line + index,
            column=column,
            reason=reason,
            unit=batch.unit,
        )

    def convert(self, batch: _Batch, schema: pa.Schema) -> pa.RecordBatch:
        ts = self._timestamps(batch)
        pp = self._instrument.price_precision
        sp = self._instrument.size_precision
        n = batch.num_rows
        ts_array = pa.array(ts.astype(np.uint64), type=pa.uint64())
        if self._kind is DataKind.TRADES:
            price = self._units(batch, "price", pp, positive=True)
            size = self._units(batch, "size", sp, positive=True)
            arrays = [
                fixed128(price, pp),
                fixed128(size, sp),
                self._sides(batch),
                self._trade_ids(batch),
                ts_array,
                ts_array,
            ]
        elif self._kind is DataKind.QUOTES:
            bid = self._units(batch, "bid", pp, positive=True)
            ask = self._units(batch, "ask", pp, positive=True)
            bid_size = self._units(batch, "bid_size", sp, positive=False)
            ask_size = self._units(batch, "ask_size", sp, positive=False)
            arrays = [
                fixed128(bid, pp),
                fixed128(ask, pp),
                fixed128(bid_size, sp),
                fixed128(ask_size, sp),
                ts_array,
                ts_array,
            ]
        else:
            open_ = self._units(batch, "open", pp, positive=True)
            high = self._units(batch, "high", pp, positive=True)
            low = self._units(batch, "low", pp, positive=True)
            close = self._units(batch, "close", pp, positive=True)
            volume = self._units(batch, "volume", sp, positive=False)
            self._check_bars(batch, open_, high, low, close)
            arrays = [
                fixed128(open_, pp),
                fixed128(high, pp),
                fixed128(low, pp),
                fixed128(close, pp),
                fixed128(volume, sp),
                ts_array,
                ts_array,
            ]
        assert all(len(a) == n for a in arrays)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    # timestamps

    def _timestamps(self, batch: _Batch) -> npt.NDArray[np.int64]:
        column = batch.columns["ts"]
        self._no_nulls(batch, column, "ts")
        kind = column.type
        if pa.types.is_timestamp(kind):
            nanos = pc.cast(column, pa.timestamp("ns", tz=kind.tz)).cast(pa.int64())
            values = nanos.to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(kind):
            values = self._epoch_integers(batch, column)
        elif pa.types.is_floating(kind):
            values = self._epoch_floats(
                batch, np.asarray(column.to_numpy(zero_copy_only=False), np.float64)
            )
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = self._text_timestamps(batch, pc.utf8_trim_whitespace(column))
        else:
            raise self._error(batch, 0, "ts", f"has type {kind}, not a time")
        values = np.asarray(values, dtype=np.int64)
        if len(values) and values.min() < 0:
            index = int(np.argmax(values < 0))
            raise self._error(batch, index, "ts", "is before 1970")
        backwards = np.flatnonzero(np.diff(values) < 0)
        if len(backwards):
            raise self._error(
                batch, int(backwards[0]) + 1, "ts", "goes back in time; sort the file"
            )
        if self._last_ts is not None and len(values) and values[0] < self._last_ts:
            raise self._error(batch, 0, "ts", "goes back in time; sort the file")
        if len(values):
            self._last_ts = int(values[-1])
        return values

    def _unit(self, first: float) -> int:
        if self._epoch_unit is None:
            magnitude = abs(first)
            self._epoch_unit = (
                1
                if magnitude >= 1e17
                else 1_000
                if magnitude >= 1e14
                else 1_000_000
                if magnitude >= 1e11
                else 1_000_000_000
            )
        return self._epoch_unit

    def _epoch_integers(self, batch: _Batch, column: pa.Array) -> npt.NDArray[np.int64]:
        try:
            values = np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
        except pa.ArrowInvalid:
            raise self._error(
                batch, _first_failing_cast(column, pa.int64()), "ts", _PAST_INT64
            ) from None
        unit = self._unit(float(values[0]) if len(values) else 0.0)
        over = np.abs(values) > _LAST_NANOS // unit
        if over.any():
            raise self._error(batch, int(np.argmax(over)), "ts", _PAST_INT64)
        return values * unit

    def _epoch_floats(
        self, batch: _Batch, numbers: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int64]:
        if not np.isfinite(numbers).all():
            raise self._error(batch, int(np.argmax(~np.isfinite(numbers))), "ts", "is not finite")
        unit = self._unit(float(numbers[0]) if len(numbers) else 0.0)
        scaled = np.round(numbers * unit)
        over = np.abs(scaled) >= float(_LAST_NANOS)
        if over.any():
            raise self._error(batch, int(np.argmax(over)), "ts", _PAST_INT64)
        return scaled.astype(np.int64)

    def _text_timestamps(self, batch: _Batch, column: pa.Array) -> npt.NDArray[np.int64]:
        if self._text_format is None:
            self._text_format = self._detect_text_format(batch, column)
        fmt = self._text_format
        if fmt == "epoch":
            digits_ok = pc.match_substring_regex(column, _DIGITS)
            if not pc.all(digits_ok).as_py():
                index = int(np.argmax(~np.asarray(digits_ok.to_numpy(zero_copy_only=False), bool)))
                raise self._error(
                    batch, index, "ts", f"{column[index].as_py()!r} is not a whole number of time"
                )
            return self._epoch_integers(batch, column)
        if fmt == "histdata":
            column = pc.replace_substring_regex(
                column, pattern=_HISTDATA, replacement=r"\1-\2-\3 \4:\5:\6.\7"
            )
        target = pa.timestamp("ns", tz="UTC") if fmt == "zoned" else pa.timestamp("ns")
        try:
            nanos = pc.cast(column, target).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            index = _first_failing_cast(column, target)
            raise self._error(
                batch,
                index,
                "ts",
                f"{batch.columns['ts'][index].as_py()!r} is not a time like the first row's",
            ) from None
        return np.asarray(nanos.to_numpy(zero_copy_only=False), dtype=np.int64)

    def _detect_text_format(self, batch: _Batch, column: pa.Array) -> str:
        first = column[0].as_py() if len(column) else ""
        if re.fullmatch(_DIGITS, first):
            return "epoch"
        if re.fullmatch(_HISTDATA, first):
            return "histdata"
        for name, target in (
            ("naive", pa.timestamp("ns")),
            ("zoned", pa.timestamp("ns", tz="UTC")),
        ):
            try:
                pc.cast(pa.array([first]), target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            return name
        raise self._error(batch, 0, "ts", f"{first!r} is not a time this importer reads")

    # numbers

    def _no_nulls(self, batch: _Batch, column: pa.Array, name: str) -> None:
        if column.null_count:
            index = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
            raise self._error(batch, index, name, "is empty")

    def _floats(self, batch: _Batch, name: str) -> npt.NDArray[np.float64]:
        column = batch.columns[name]
        self._no_nulls(batch, column, name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            trimmed = pc.utf8_trim_whitespace(column)
            try:
                column = pc.cast(trimmed, pa.float64())
            except pa.ArrowInvalid:
                for index, value in enumerate(trimmed.to_pylist()):
                    try:
                        float(value)
                    except ValueError:
                        raise self._error(
                            batch, index, name, f"{value!r} is not a number"
                        ) from None
                raise self._error(batch, 0, name, "is not a number") from None
        elif pa.types.is_decimal(column.type) or pa.types.is_integer(column.type):
            column = pc.cast(column, pa.float64())
        elif not pa.types.is_floating(column.type):
            raise self._error(batch, 0, name, f"has type {column.type}, not a number")
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            raise self._error(batch, int(np.argmax(~finite)), name, "is not a finite number")
        return values

    def _units(
        self, batch: _Batch, name: str, precision: int, *, positive: bool
    ) -> npt.NDArray[np.int64]:
        if name not in batch.columns:
            return np.full(batch.num_rows, round(DEFAULT_VOLUME * 10**precision), dtype=np.int64)
        values = self._floats(batch, name)
        # NautilusTrader's reader panics (killing the process) on values beyond its limits.
        limit = QUANTITY_MAX if name in QUANTITIES else PRICE_MAX
        if np.abs(values).max(initial=0.0) > limit:
            index = int(np.argmax(np.abs(values) > limit))
            raise self._error(batch, index, name, f"is above NautilusTrader's limit {limit:.0f}")
        if np.abs(values).max(initial=0.0) * 10.0**precision >= 2.0**62:
            index = int(np.argmax(np.abs(values) * 10.0**precision >= 2.0**62))
            raise self._error(batch, index, name, "is too large for the instrument's precision")
        units = scaled_units(values, precision)
        bad = units <= 0 if positive else units < 0
        if bad.any():
            index = int(np.argmax(bad))
            why = (
                f"must be positive at {precision} decimal places"
                if positive
                else "must not be negative"
            )
            raise self._error(batch, index, name, f"{values[index]!r} {why}")
        return units

    def _check_bars(
        self,
        batch: _Batch,
        open_: npt.NDArray[np.int64],
        high: npt.NDArray[np.int64],
        low: npt.NDArray[np.int64],
        close: npt.NDArray[np.int64],
    ) -> None:
        for name, bad in (
            ("high", (high < open_) | (high < close) | (high < low)),
            ("low", (low > open_) | (low > close)),
        ):
            if bad.any():
                index = int(np.argmax(bad))
                raise self._error(
                    batch,
                    index,
                    name,
                    "is inconsistent with open/close (high >= open, close >= low)",
                )

    # trades

    def _sides(self, batch: _Batch) -> pa.Array:
        if "side" in batch.columns:
            column = batch.columns["side"]
            if pa.types.is_integer(column.type):
                self._no_nulls(batch, column, "side")
                values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)
                bad = (values < 0) | (values > 2)
                if bad.any():
                    raise self._error(batch, int(np.argmax(bad)), "side", "must be 0, 1 or 2")
                return pa.array(values.astype(np.uint8), type=pa.uint8())
            text = pc.utf8_upper(pc.utf8_trim_whitespace(column.cast(pa.string())))
            text = pc.fill_null(text, "")
            sides = pc.if_else(
                pc.is_in(text, pa.array(sorted(_BUY))),
                1,
                pc.if_else(
                    pc.is_in(text, pa.array(sorted(_SELL))),
                    2,
                    pc.if_else(pc.is_in(text, pa.array(sorted(_NONE))), 0, -1),
                ),
            )
            values = np.asarray(sides.to_numpy(zero_copy_only=False), dtype=np.int64)
            if (values < 0).any():
                index = int(np.argmax(values < 0))
                raise self._error(
                    batch, index, "side", f"{column[index].as_py()!r} is not BUY or SELL"
                )
            return pa.array(values.astype(np.uint8), type=pa.uint8())
        if "buyer_maker" in batch.columns:
            column = batch.columns["buyer_maker"]
            self._no_nulls(batch, column, "buyer_maker")
            if pa.types.is_boolean(column.type):
                maker = np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)
            else:
                text = pc.utf8_upper(pc.utf8_trim_whitespace(column.cast(pa.string())))
                is_true = np.asarray(
                    pc.is_in(text, pa.array(sorted(_TRUE))).to_numpy(zero_copy_only=False), bool
                )
                is_false = np.asarray(
                    pc.is_in(text, pa.array(sorted(_FALSE))).to_numpy(zero_copy_only=False), bool
                )
                if not (is_true | is_false).all():
                    index = int(np.argmax(~(is_true | is_false)))
                    raise self._error(
                        batch, index, "buyer_maker", f"{text[index].as_py()!r} is not true or false"
                    )
                maker = is_true
            # The buyer was the maker, so the seller took liquidity: the aggressor is the seller.
            return pa.array(np.where(maker, 2, 1).astype(np.uint8), type=pa.uint8())
        return pa.array(np.zeros(batch.num_rows, dtype=np.uint8), type=pa.uint8())

    def _trade_ids(self, batch: _Batch) -> pa.Array:
        if "trade_id" not in batch.columns:
            start = batch.first_line
            return pa.array(np.arange(start, start + batch.num_rows).astype(str), type=pa.string())
        column = batch.columns["trade_id"]
        self._no_nulls(batch, column, "trade_id")
        if pa.types.is_floating(column.type):
            column = column.cast(pa.int64())
        text = pc.utf8_trim_whitespace(column.cast(pa.string()))
        lengths = np.asarray(pc.utf8_length(text).to_numpy(zero_copy_only=False), dtype=np.int64)
        bad = (lengths == 0) | (lengths > MAX_TRADE_ID_LENGTH)
        if bad.any():
            raise self._error(
                batch,
                int(np.argmax(bad)),
                "trade_id",
                f"must be 1-{MAX_TRADE_ID_LENGTH} characters",
            )
        return text


def _first_failing_cast(column: pa.Array, target: pa.DataType) -> int:
    """Return the index of the first value that does not cast (only on the error path)."""
    for index, value in enumerate(column.to_pylist()):
        try:
            pc.cast(pa.array([value], type=pa.string()), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return index
    return 0


def check_format(name: str) -> FileFormat | None:
    """Return the format a file name's extension gives, or None."""
    lowered = name.lower()
    if re.search(r"\.(csv|txt)$", lowered):
        return FileFormat.CSV
    if re.search(r"\.(parquet|pq)$", lowered):
        return FileFormat.PARQUET
    return None
