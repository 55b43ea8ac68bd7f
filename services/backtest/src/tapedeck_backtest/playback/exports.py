"""Exports, the rules: which result file each part is, and how a table is written as a file."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq


class ExportPart(StrEnum):
    """One file of an export: a result table, or the run's spec or statistics."""

    CANDLES = "candles"
    FILLS = "fills"
    TRADES = "trades"
    EQUITY = "equity"
    SPEC = "spec"
    STATISTICS = "statistics"

    @property
    def result_file(self) -> str | None:
        """Return the result file a table part is written from (None for the JSON parts)."""
        if self in (ExportPart.SPEC, ExportPart.STATISTICS):
            return None
        return f"{self.value}.parquet"


class ExportFormat(StrEnum):
    """How the tables are written."""

    CSV = "csv"
    PARQUET = "parquet"


ALL_PARTS = tuple(ExportPart)
CONTENT_TYPES = {
    ExportFormat.CSV: "text/csv",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class ExportQuery:
    """What ExportBacktest asks: the run, the tables' format, the parts in order, chunk bytes."""

    run_id: str
    form: ExportFormat
    parts: tuple[ExportPart, ...]
    chunk_size: int


@dataclass(frozen=True)
class ExportFile:
    """One exported file: its name, media type and bytes, written as they are read.

    `pieces` gives at least one piece (an empty file: one empty piece), each at most the query's
    chunk size; it reads and writes as it goes (blocking: advance it off the event loop), so an
    export holds one batch of rows and one chunk, never a whole table or file.
    """

    name: str
    content_type: str
    pieces: Generator[bytes, None, None]


EXPORT_BATCH_ROWS = 65_536


def table_file(
    part: ExportPart, source: pq.ParquetFile, form: ExportFormat, chunk_size: int
) -> ExportFile:
    """Write a result table as CSV (a header row) or Parquet, batch by batch."""
    return ExportFile(
        f"{part.value}.{form.value}", CONTENT_TYPES[form], _written(source, form, chunk_size)
    )


def json_file(part: ExportPart, text: str, chunk_size: int) -> ExportFile:
    """Return a JSON part."""
    return ExportFile(f"{part.value}.json", "application/json", chunks(text.encode(), chunk_size))


def chunks(data: bytes, size: int) -> Generator[bytes, None, None]:
    """Cut a file into messages of at most `size` bytes (an empty file is one empty chunk)."""
    view = memoryview(data)
    for offset in range(0, max(len(data), 1), size):
        yield bytes(view[offset : offset + size])


class _Drain:
    """A file the writers write to and whose bytes are taken as soon as a chunk is full."""

    closed = False  # read by pyarrow's PythonFile

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def take(self, size: int) -> Iterator[bytes]:
        """Give the full chunks written so far."""
        while len(self._buffer) >= size:
            yield bytes(self._buffer[:size])
            del self._buffer[:size]

    def rest(self) -> bytes:
        """Give what is left (after the writer closed)."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return rest


def _written(
    source: pq.ParquetFile, form: ExportFormat, chunk_size: int
) -> Generator[bytes, None, None]:
    drain = _Drain()
    sink = pa.PythonFile(drain, mode="w")
    schema = source.schema_arrow
    if form is ExportFormat.CSV:
        writer: pa_csv.CSVWriter | pq.ParquetWriter = pa_csv.CSVWriter(sink, schema)
    else:
        # Dictionaries for text only: prices and times rarely repeat within a row group, and
        # trying them per batch made the file 25 % larger and its writing 3x slower.
        text = [f.name for f in schema if pa.types.is_string(f.type)]
        writer = pq.ParquetWriter(sink, schema, use_dictionary=text)
    given = False
    with writer:
        for batch in source.iter_batches(batch_size=EXPORT_BATCH_ROWS):
            writer.write_batch(batch)
            for piece in drain.take(chunk_size):
                given = True
                yield piece
    yield from drain.take(chunk_size)
    rest = drain.rest()
    if rest or not given:
        yield rest
