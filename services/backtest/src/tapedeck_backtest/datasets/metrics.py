"""The importer's metrics: rows and bytes imported, and how long each import took."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

IMPORTED_ROWS = Counter(
    "tapedeck_import_rows_total", "Rows (bars or ticks) imported into datasets."
)
IMPORTED_BYTES = Counter("tapedeck_import_bytes_total", "Bytes of source files imported.")
IMPORT_DURATION = Histogram(
    "tapedeck_import_duration_seconds",
    "Time of one import that wrote a new dataset, from hashing its file to committing it.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)


def imported(*, rows: int, source_bytes: int, seconds: float) -> None:
    """Count one import that wrote a new dataset."""
    IMPORTED_ROWS.inc(rows)
    IMPORTED_BYTES.inc(source_bytes)
    IMPORT_DURATION.observe(seconds)
