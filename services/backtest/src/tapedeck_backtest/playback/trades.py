"""Pages of a run's trades (round trips) by exit time, read from trades.parquet."""

from __future__ import annotations

import numpy as np

from tapedeck_backtest.playback.domain import TradeQuery
from tapedeck_backtest.playback.files import time_span
from tapedeck_backtest.runs.results import ResultFiles
from tapedeck_backtest.runs.trades import Trade, from_rows
from tapedeck_common.errors import FailedPrecondition


def page(
    results: ResultFiles, query: TradeQuery, *, offset: int, size: int
) -> tuple[int, list[Trade]]:
    """Return how many trades the query selects and its trades [offset, offset + size)."""
    if not (results.directory / "trades.parquet").is_file():
        raise FailedPrecondition(
            "this run was stored before trades were recorded; run it again to list its trades"
        )
    table = results.table("trades.parquet")
    exits = table.column("exit_time").to_numpy()
    lo, hi = time_span(exits, start_ns=query.start_ns, end_ns=query.end_ns)
    rows = np.arange(lo, hi)
    if query.side is not None:
        sides = table.column("side").to_numpy(zero_copy_only=False)[lo:hi]
        rows = rows[sides == query.side]
    chosen = rows[offset : offset + size]
    return int(rows.size), from_rows(table.take(chosen).to_pylist())
