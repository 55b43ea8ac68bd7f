"""Exports, the rules: which result file each part is, and how a table is written as a file."""

from __future__ import annotations

import io
from collections.abc import Iterator
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
    """One exported file."""

    name: str
    content_type: str
    data: bytes


def table_file(part: ExportPart, table: pa.Table, form: ExportFormat) -> ExportFile:
    """Write a result table as CSV (a header row) or Parquet."""
    sink = io.BytesIO()
    if form is ExportFormat.CSV:
        pa_csv.write_csv(table, sink)
    else:
        pq.write_table(table, sink)
    return ExportFile(f"{part.value}.{form.value}", CONTENT_TYPES[form], sink.getvalue())


def json_file(part: ExportPart, text: str) -> ExportFile:
    """Return a JSON part."""
    return ExportFile(f"{part.value}.json", "application/json", text.encode())


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """Cut a file into messages of at most `size` bytes (an empty file is one empty chunk)."""
    view = memoryview(data)
    for offset in range(0, max(len(data), 1), size):
        yield bytes(view[offset : offset + size])
