"""The worker's catalog reader: row groups in time order, clipped to the run's window."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tapedeck_backtest.datasets.catalog import data_directory
from tapedeck_backtest.datasets.domain import DataKind
from tapedeck_backtest.runs import engine


def test_window_tables_read_row_groups_in_order_and_keep_only_the_window(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(engine, "STREAM_BATCH_ROWS", 250)
    directory = data_directory(tmp_path, DataKind.TRADES, instrument_id="BTCUSDT.BINANCE")
    directory.mkdir(parents=True)
    for name, first in (("a.parquet", 0), ("b.parquet", 1_000)):  # two files, in name order
        times = np.arange(first, first + 1_000, dtype=np.uint64)
        table = pa.table({"price": times.astype(np.float64), "ts_init": times})
        table = table.replace_schema_metadata({"instrument_id": "BTCUSDT.BINANCE"})
        pq.write_table(table, directory / name, row_group_size=100)
    source = SimpleNamespace(
        catalog_path=str(tmp_path), kind=DataKind.TRADES, instrument_id="BTCUSDT.BINANCE"
    )
    spec = SimpleNamespace(start_ns=450, end_ns=1_549)

    tables = list(engine._window_tables(source, spec))  # type: ignore[arg-type]

    times = np.concatenate([t.column("ts_init").to_numpy() for t in tables])
    np.testing.assert_array_equal(times, np.arange(450, 1_549))  # half-open: 1549 is out
    assert all(t.num_rows <= 300 for t in tables)  # bounded pieces, not the whole window
    assert all(t.schema.metadata == {b"instrument_id": b"BTCUSDT.BINANCE"} for t in tables)
    prices = list(engine._window_tables(source, spec, ["ts_init", "price"]))  # type: ignore[arg-type]
    assert prices[0].column_names == ["ts_init", "price"]
