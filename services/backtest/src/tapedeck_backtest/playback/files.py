"""A finished run's result files opened for playback: memory-mapped columns, no per-request parsing.

The runs writer (`runs/results.py`) stores Parquet, which is compressed and cannot be sliced in place.
At the first playback of a run this module converts it, once and in bounded memory (row group by
row group), into a sidecar directory `<run_dir>/playback-1/` next to the Parquet files:

- numeric columns as `.npy` files (`candles.time.npy`, `equity.mark.npy`, ...), opened with
  `numpy.load(mmap_mode="r")`: a window is a zero-copy slice of the page cache;
- `equity.drawdown.npy`, derived: 1 - equity / running peak of equity since the run's start;
- the string columns of fills and of the portfolio (exact decimal strings) as uncompressed Arrow
  IPC files, memory-mapped: reading row i touches only that row's bytes.

A finished run never changes, so the sidecar never goes stale; a run directory replaced by a
re-run (before it finished) takes its sidecar with it. The conversion is atomic (a staging
directory renamed into place), so a concurrent reader in another process sees all or nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from tapedeck_backtest.playback.domain import Manifest
from tapedeck_backtest.runs.results import INDICATOR_COLUMNS, ResultFiles

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SIDECAR = "playback-2"  # -2: equity drawdown
SIDECAR_DONE = "done"  # written last: the sidecar is whole
_BATCH_ROWS = 65_536
# Parquet file -> numeric columns kept as memory-mapped .npy files.
_NUMERIC: dict[str, tuple[str, ...]] = {
    "candles": ("time", "open", "high", "low", "close", "volume", *INDICATOR_COLUMNS),
    "equity": ("time", "equity", "mark"),
    "fills": ("time",),
    "portfolio": ("time",),
}
# Parquet file -> string columns kept as a memory-mapped Arrow IPC file.
_STRINGS: dict[str, tuple[str, ...]] = {
    "fills": (
        "fill_id",
        "order_id",
        "position_id",
        "instrument_id",
        "side",
        "quantity",
        "price",
        "commission",
        "commission_currency",
    ),
    "portfolio": (
        "position_dec",
        "average_price_dec",
        "realized_pnl_dec",
        "fees_dec",
        "cash_dec",
        "base_balance_dec",
    ),
}


@dataclass(frozen=True)
class RunFiles:
    """One finished run's results, memory-mapped."""

    manifest: Manifest
    candles: dict[str, FloatArray]
    candle_times: IntArray
    equity_times: IntArray
    equity_values: FloatArray
    equity_marks: FloatArray
    equity_drawdowns: FloatArray
    fill_times: IntArray
    fills: pa.Table
    portfolio_times: IntArray
    portfolio: pa.Table
    mapped_bytes: int


def time_span(times: IntArray, *, start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
    """Return the positions [lo, hi) of the sorted `times` in [start, end) (None: unbounded)."""
    lo = 0 if start_ns is None else int(np.searchsorted(times, start_ns, "left"))
    hi = times.size if end_ns is None else int(np.searchsorted(times, end_ns, "left"))
    return lo, max(lo, hi)


def sidecar_ready(run_dir: Path) -> bool:
    """Tell whether a run's playback sidecar has been built."""
    return (run_dir / SIDECAR / SIDECAR_DONE).exists()


def build_sidecar(run_dir: Path) -> None:
    """Convert a run's Parquet results into the memory-mappable sidecar, once (blocking)."""
    if sidecar_ready(run_dir):
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{SIDECAR}.", dir=run_dir))
    try:
        results = ResultFiles(run_dir)
        for name, columns in _NUMERIC.items():
            _write_numeric(results.parquet(f"{name}.parquet"), staging, name, columns)
        _write_drawdown(staging)
        for name, columns in _STRINGS.items():
            _write_strings(results.parquet(f"{name}.parquet"), staging / f"{name}.arrow", columns)
        (staging / SIDECAR_DONE).write_text("1")
        try:
            os.rename(staging, run_dir / SIDECAR)
        except OSError:
            if not sidecar_ready(run_dir):  # not a concurrent builder that won the rename
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_numeric(
    parquet: pq.ParquetFile, target: Path, name: str, columns: tuple[str, ...]
) -> None:
    rows = parquet.metadata.num_rows
    outputs = {
        column: np.lib.format.open_memmap(
            target / f"{name}.{column}.npy",
            mode="w+",
            dtype=np.int64 if column == "time" else np.float64,
            shape=(rows,),
        )
        for column in columns
    }
    offset = 0
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=list(columns)):
        size = batch.num_rows
        for column, output in outputs.items():
            values = batch.column(column).to_numpy(zero_copy_only=False)
            output[offset : offset + size] = values
        offset += size
    for output in outputs.values():
        output.flush()
    outputs.clear()  # unmap before the staging directory is renamed


def _write_drawdown(target: Path) -> None:
    values = np.load(target / "equity.equity.npy", mmap_mode="r")
    output = np.lib.format.open_memmap(
        target / "equity.drawdown.npy", mode="w+", dtype=np.float64, shape=values.shape
    )
    peak = -np.inf
    for a in range(0, values.size, _BATCH_ROWS):
        block = np.asarray(values[a : a + _BATCH_ROWS])
        peaks = np.maximum.accumulate(np.maximum(block, peak))
        peak = float(peaks[-1])
        with np.errstate(divide="ignore", invalid="ignore"):
            output[a : a + block.size] = np.where(peaks > 0, 1.0 - block / peaks, 0.0)
    output.flush()
    del output, values  # unmap before the staging directory is renamed


def _write_strings(parquet: pq.ParquetFile, target: Path, columns: tuple[str, ...]) -> None:
    schema = pa.schema([pa.field(column, pa.string()) for column in columns])
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=list(columns)):
            writer.write_batch(batch.select(list(columns)).cast(schema))


def open_run(run_dir: Path) -> RunFiles:
    """Open a run's sidecar (built beforehand) as memory maps."""
    sidecar = run_dir / SIDECAR
    manifest = Manifest.from_json(ResultFiles(run_dir).manifest())
    mapped = 0

    def column(name: str, field: str) -> Any:
        nonlocal mapped
        path = sidecar / f"{name}.{field}.npy"
        mapped += path.stat().st_size
        return np.load(path, mmap_mode="r")

    def strings(name: str) -> pa.Table:
        nonlocal mapped
        path = sidecar / f"{name}.arrow"
        mapped += path.stat().st_size
        return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()

    candles = {field: column("candles", field) for field in _NUMERIC["candles"] if field != "time"}
    return RunFiles(
        manifest=manifest,
        candles=candles,
        candle_times=column("candles", "time"),
        equity_times=column("equity", "time"),
        equity_values=column("equity", "equity"),
        equity_marks=column("equity", "mark"),
        equity_drawdowns=column("equity", "drawdown"),
        fill_times=column("fills", "time"),
        fills=strings("fills"),
        portfolio_times=column("portfolio", "time"),
        portfolio=strings("portfolio"),
        mapped_bytes=mapped,
    )
