"""Playback, the application: open a finished run's results and cut the window a request asks for.

The run is resolved first (NOT_FOUND, or FAILED_PRECONDITION unless SUCCEEDED); every answer
carries its content version, and a page of equity or fills resumes only on the same version.
Work over many rows runs in a thread so the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from tapedeck_backtest.playback import candles, equity, fills, trades
from tapedeck_backtest.playback.domain import (
    CandleQuery,
    EquityQuery,
    FillQuery,
    PagePosition,
    PortfolioAt,
    TradeQuery,
    resume_offset,
)
from tapedeck_backtest.playback.exports import ExportFile, ExportPart, ExportQuery, table_file
from tapedeck_backtest.playback.files import FloatArray, IntArray
from tapedeck_backtest.playback.portfolio import portfolio_at
from tapedeck_backtest.playback.store import ResultStore
from tapedeck_backtest.runs.domain import Fill, Run
from tapedeck_backtest.runs.trades import Trade

# Work above this many source rows goes to a thread so the event loop stays responsive.
_OFF_LOOP_ROWS = 200_000


async def _compute[T](rows: int, work: Callable[[], T]) -> T:
    if rows > _OFF_LOOP_ROWS:
        return await asyncio.to_thread(work)
    return work()


@dataclass(frozen=True)
class CandleStream:
    """A window of candles: its plan, and its blocks as they are cut."""

    version: str
    window: candles.CandleWindow
    blocks: AsyncIterator[candles.CandleBlock]


@dataclass(frozen=True)
class EquityPage:
    """A page of the equity curve in chunks; `next_offset` is None on the last page."""

    version: str
    total_points: int
    chunk_count: int
    chunks: Iterator[tuple[IntArray, FloatArray, FloatArray]]  # times, equity, drawdown
    next_offset: int | None


@dataclass(frozen=True)
class FillPage:
    """A page of fills; `next_offset` is None on the last page."""

    version: str
    fills: list[Fill]
    next_offset: int | None


@dataclass(frozen=True)
class TradePage:
    """A page of trades; `next_offset` is None on the last page."""

    version: str
    trades: list[Trade]
    next_offset: int | None


class Playback:
    """Candles, portfolio state, equity and fills of finished runs."""

    def __init__(self, store: ResultStore) -> None:
        self._store = store

    async def candles(self, query: CandleQuery) -> CandleStream:
        """Return the candles opening in the window, aggregated to at most `max_candles`."""
        version, files = await self._store.open(query.run_id)
        plan = candles.window(
            files,
            start_ns=query.start_ns,
            end_ns=query.end_ns,
            max_candles=query.max_candles,
            timeframe_ns=query.timeframe_ns,
        )
        produced = candles.blocks(
            files, plan, indicators=query.indicators, chunk_size=query.chunk_size
        )
        rows = plan.source_count if plan.aggregated else query.chunk_size

        async def blocks() -> AsyncIterator[candles.CandleBlock]:
            while (block := await _compute(rows, lambda: next(produced, None))) is not None:
                yield block

        return CandleStream(version, plan, blocks())

    async def portfolio(self, run_id: str, time_ns: int) -> tuple[str, PortfolioAt]:
        """Return the run's portfolio at an instant, fills at that instant included."""
        version, files = await self._store.open(run_id)
        return version, portfolio_at(files, time_ns)

    async def equity(
        self, query: EquityQuery, *, after: PagePosition | None, size: int
    ) -> EquityPage:
        """Return a page of `size` selected points of the equity curve, in chunks."""
        version, files = await self._store.open(query.run_id)
        offset = resume_offset(after, version=version)
        selection = await _compute(
            files.equity_times.size if query.max_points else 0,
            lambda: equity.select(
                files,
                start_ns=query.start_ns,
                end_ns=query.end_ns,
                sample_every=query.sample_every,
                max_points=query.max_points,
            ),
        )
        end = min(offset + size, len(selection))
        in_page = max(0, end - offset)
        return EquityPage(
            version=version,
            total_points=selection.total_points,
            chunk_count=(in_page + query.chunk_size - 1) // query.chunk_size,
            chunks=equity.blocks(
                files, selection, offset=offset, count=size, chunk_size=query.chunk_size
            ),
            next_offset=offset + size if offset + size < len(selection) else None,
        )

    async def fills(self, query: FillQuery, *, after: PagePosition | None, size: int) -> FillPage:
        """Return a page of `size` fills of the window, in time order."""
        version, files = await self._store.open(query.run_id)
        offset = resume_offset(after, version=version)
        span = fills.window(files, start_ns=query.start_ns, end_ns=query.end_ns)
        page = fills.page(files, span, offset=offset, size=size)
        following = offset + len(page)
        return FillPage(version, page, following if following < len(span) else None)

    async def export(self, query: ExportQuery) -> tuple[Run, dict[ExportPart, ExportFile]]:
        """Return a SUCCEEDED run and its result tables as the query's files, written as read."""
        _, results = await self._store.results(query.run_id)
        run = await self._store.run(query.run_id)

        def work() -> dict[ExportPart, ExportFile]:
            return {
                part: table_file(
                    part, results.parquet(part.result_file), query.form, query.chunk_size
                )
                for part in query.parts
                if part.result_file is not None
            }

        return run, await asyncio.to_thread(work)

    async def trades(
        self, query: TradeQuery, *, after: PagePosition | None, size: int
    ) -> TradePage:
        """Return a page of `size` trades of the window and side, by exit time."""
        version, results = await self._store.results(query.run_id)
        offset = resume_offset(after, version=version)
        selected, page = await asyncio.to_thread(
            trades.page, results, query, offset=offset, size=size
        )
        following = offset + len(page)
        return TradePage(version, page, following if following < selected else None)
