"""The NautilusTrader catalog's own Arrow layout, written directly (the fast path).

NautilusTrader (1.221 to 1.231) is the high-precision build: prices and sizes are `fixed_size_binary(16)`
holding the value scaled by 10^16 as a little-endian two's-complement int128. A file lives at
`<catalog>/data/<kind>/<identifier>/<first-ts>_<last-ts>.parquet`, with `instrument_id`,
`price_precision` and `size_precision` (and `bar_type` for bars) in the schema metadata. The
engine prunes by the timestamps in the file name, so the name is set once the last row is known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from tapedeck_backtest.datasets.domain import DataKind, stored_bar_type

FIXED_PRECISION = 16
FIXED_BYTES = 16

_FIXED = pa.binary(FIXED_BYTES)

# The schemas NautilusTrader derives from its Rust types (serialization.arrow.schema).
TRADE_SCHEMA = pa.schema(
    [
        pa.field("price", _FIXED, nullable=False),
        pa.field("size", _FIXED, nullable=False),
        pa.field("aggressor_side", pa.uint8(), nullable=False),
        pa.field("trade_id", pa.string(), nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ]
)
QUOTE_SCHEMA = pa.schema(
    [
        pa.field("bid_price", _FIXED, nullable=False),
        pa.field("ask_price", _FIXED, nullable=False),
        pa.field("bid_size", _FIXED, nullable=False),
        pa.field("ask_size", _FIXED, nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ]
)
BAR_SCHEMA = pa.schema(
    [
        pa.field("open", _FIXED, nullable=False),
        pa.field("high", _FIXED, nullable=False),
        pa.field("low", _FIXED, nullable=False),
        pa.field("close", _FIXED, nullable=False),
        pa.field("volume", _FIXED, nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ]
)

# The catalog's directory per data class (nautilus_trader's class_to_filename).
DIRECTORY = {DataKind.TRADES: "trade_tick", DataKind.QUOTES: "quote_tick", DataKind.BARS: "bar"}
SCHEMA = {DataKind.TRADES: TRADE_SCHEMA, DataKind.QUOTES: QUOTE_SCHEMA, DataKind.BARS: BAR_SCHEMA}

# Rows per Parquet row group, as ParquetDataCatalog writes them (max_rows_per_group): the
# engine's reader streams and prunes by row group statistics.
ROW_GROUP_ROWS = 5_000

_U32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


def schema_for(
    kind: DataKind, *, instrument_id: str, price_precision: int, size_precision: int
) -> pa.Schema:
    """Return the catalog schema of `kind` with the metadata the catalog reader expects."""
    metadata = {
        "instrument_id": instrument_id,
        "price_precision": str(price_precision),
        "size_precision": str(size_precision),
    }
    if kind is DataKind.BARS:
        metadata = {"bar_type": stored_bar_type(instrument_id), **metadata}
    return SCHEMA[kind].with_metadata(metadata)


def round_half_away(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Round like Rust's f64::round (half away from zero), which NautilusTrader uses."""
    rounded = np.rint(values)
    truncated = np.trunc(values)
    halves = np.abs(values - truncated) == 0.5
    rounded[halves] = truncated[halves] + np.sign(values[halves])
    return rounded


def scaled_units(values: npt.NDArray[np.float64], precision: int) -> npt.NDArray[np.int64]:
    """Return values in units of 10^-precision, rounded as NautilusTrader's Price(value, precision)."""
    return round_half_away(values * float(10**precision)).astype(np.int64)


def fixed128(units: npt.NDArray[np.int64], precision: int) -> pa.FixedSizeBinaryArray:
    """Return `units * 10^(16 - precision)` as little-endian int128 in fixed_size_binary(16)."""
    factor = np.uint64(10 ** (FIXED_PRECISION - precision))
    negative = units < 0
    magnitude = np.abs(units).astype(np.uint64)
    # 64 x 64 -> 128-bit multiply from 32-bit halves; every partial product fits in 64 bits.
    a_lo, a_hi = magnitude & _U32, magnitude >> _SHIFT
    b_lo, b_hi = factor & _U32, factor >> _SHIFT
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    hi_hi = a_hi * b_hi
    middle = (lo_lo >> _SHIFT) + (hi_lo & _U32) + (lo_hi & _U32)
    low = (lo_lo & _U32) | ((middle & _U32) << _SHIFT)
    high = hi_hi + (hi_lo >> _SHIFT) + (lo_hi >> _SHIFT) + (middle >> _SHIFT)
    if negative.any():
        low = np.where(negative, ~low + np.uint64(1), low)
        high = np.where(negative, ~high + (low == 0).astype(np.uint64), high)
    words = np.empty((len(units), 2), dtype="<u8")
    words[:, 0] = low
    words[:, 1] = high
    return pa.FixedSizeBinaryArray.from_buffers(
        _FIXED, len(units), [None, pa.py_buffer(words.tobytes())]
    )


def fixed128_to_float(array: pa.FixedSizeBinaryArray | pa.ChunkedArray) -> npt.NDArray[np.float64]:
    """Return fixed-point int128 values as floats (for checks and reports, not for booking)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    raw = np.frombuffer(array.buffers()[1], dtype="<u8")[
        array.offset * 2 : (array.offset + len(array)) * 2
    ]
    words = raw.reshape(-1, 2)
    high = words[:, 1].view(np.int64).astype(np.float64)
    low = words[:, 0].astype(np.float64)
    return (high * 2.0**64 + low) / 10.0**FIXED_PRECISION


def catalog_file_name(first_ns: int, last_ns: int) -> str:
    """Return the catalog's file name for a file spanning [first_ns, last_ns]."""
    return f"{_file_timestamp(first_ns)}_{_file_timestamp(last_ns)}.parquet"


def _file_timestamp(nanos: int) -> str:
    seconds, fraction = divmod(nanos, 1_000_000_000)
    stamp = np.datetime64(seconds, "s").astype(str)  # YYYY-MM-DDTHH:MM:SS
    return f"{stamp.replace(':', '-')}-{fraction:09d}Z"


def data_directory(catalog: Path, kind: DataKind, *, instrument_id: str) -> Path:
    """Return the directory the catalog reads `kind` data of one instrument from."""
    return catalog / data_prefix(kind, instrument_id=instrument_id)


def data_prefix(kind: DataKind, *, instrument_id: str) -> str:
    """Return where in a catalog its `kind` data of one instrument lives (a relative path)."""
    identifier = stored_bar_type(instrument_id) if kind is DataKind.BARS else instrument_id
    return f"data/{DIRECTORY[kind]}/{identifier.replace('/', '')}"


@dataclass(frozen=True)
class WrittenFile:
    """A finished catalog file."""

    path: Path
    rows: int
    first_ns: int
    last_ns: int
    size_bytes: int


class CatalogFileWriter:
    """Write record batches of one kind and instrument into one catalog file, named at close."""

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        self._directory = directory
        self._schema = schema
        directory.mkdir(parents=True, exist_ok=True)
        self._partial = directory / ".partial.parquet"
        # Dictionary pages buy nothing for 16-byte fixed-point values and cost half the write
        # time; the data and schema stay exactly what the catalog writes itself.
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            str(self._partial), schema, compression="snappy", use_dictionary=False
        )
        self.rows = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        """Append a batch already in the catalog schema."""
        if batch.num_rows == 0:
            return
        assert self._writer is not None, "writer is closed"
        ts_init = batch.column("ts_init")
        if self.first_ns is None:
            self.first_ns = int(ts_init[0].as_py())
        self.last_ns = int(ts_init[-1].as_py())
        self.rows += batch.num_rows
        self._writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)

    def close(self) -> WrittenFile:
        """Finish the file and give it the catalog's name; refuses an empty file."""
        assert self._writer is not None, "writer is closed"
        self._writer.close()
        self._writer = None
        if self.first_ns is None or self.last_ns is None:
            self._partial.unlink(missing_ok=True)
            raise ValueError("no rows to write")
        final = self._directory / catalog_file_name(self.first_ns, self.last_ns)
        os.replace(self._partial, final)
        return WrittenFile(
            path=final,
            rows=self.rows,
            first_ns=self.first_ns,
            last_ns=self.last_ns,
            size_bytes=final.stat().st_size,
        )

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> CatalogFileWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()


class ReadBackMismatch(Exception):
    """The catalog's own reader does not return what was written."""


_VALUE_FIELDS = {
    DataKind.TRADES: ("price", "size"),
    DataKind.QUOTES: ("bid_price", "ask_price", "bid_size", "ask_size"),
    DataKind.BARS: ("open", "high", "low", "close", "volume"),
}


def verify_read_back(
    catalog: Path, kind: DataKind, *, instrument_id: str, written: WrittenFile
) -> None:
    """Read the first and last rows back through ParquetDataCatalog and compare them exactly."""
    reader = ParquetDataCatalog(str(catalog))
    parquet = pq.ParquetFile(str(written.path))
    first = parquet.read_row_group(0).slice(0, 1).to_pylist()[0]
    last_group = parquet.read_row_group(parquet.metadata.num_row_groups - 1)
    last = last_group.slice(last_group.num_rows - 1, 1).to_pylist()[0]
    for row in (first, last):
        ts = row["ts_init"]
        if kind is DataKind.TRADES:
            found = reader.trade_ticks(instrument_ids=[instrument_id], start=ts, end=ts)
        elif kind is DataKind.QUOTES:
            found = reader.quote_ticks(instrument_ids=[instrument_id], start=ts, end=ts)
        else:
            found = reader.bars(bar_types=[stored_bar_type(instrument_id)], start=ts, end=ts)
        expected = {
            name: int.from_bytes(row[name], "little", signed=True) for name in _VALUE_FIELDS[kind]
        }
        if kind is DataKind.TRADES:
            expected_side, expected_id = row["aggressor_side"], row["trade_id"]
        if not any(
            item.ts_init == ts
            and all(getattr(item, name).raw == value for name, value in expected.items())
            and (
                kind is not DataKind.TRADES
                or (
                    int(item.aggressor_side) == expected_side and item.trade_id.value == expected_id
                )
            )
            for item in found
        ):
            raise ReadBackMismatch(
                f"{written.path.name}: the catalog reads back no row equal to the one at {ts}"
            )
