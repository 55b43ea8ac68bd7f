"""The playback RPCs of BacktestService: requests to the playback application, results to protos.

Every request is checked first (INVALID_ARGUMENT naming the field), its page token included, then
the run is resolved. A page token is bound to its request and to the results' content version.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator
from typing import Any

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.playback import messages
from tapedeck_backtest.playback.service import Playback
from tapedeck_common.paging import PageTokens

Context = grpc.aio.ServicerContext[Any, Any]


class PlaybackRpcs:
    """StreamCandles, GetPortfolioState, StreamEquity, ListFills and ListTrades."""

    def __init__(self, playback: Playback, *, page_tokens: PageTokens) -> None:
        self._playback = playback
        self._page_tokens = page_tokens

    async def StreamCandles(
        self, request: pb.StreamCandlesRequest, context: Context
    ) -> AsyncGenerator[pb.StreamCandlesResponse, None]:
        """Stream a window of a finished run's candles, aggregated to at most max_candles."""
        query = messages.candle_query(request)
        stream = await self._playback.candles(query)
        sent = False
        async for block in stream.blocks:
            sent = True
            yield messages.candles_to_proto(
                block, window=stream.window, indicators=query.indicators, version=stream.version
            )
        if not sent:  # an empty window still answers with its version and counts
            yield messages.no_candles_to_proto(
                window=stream.window, indicators=query.indicators, version=stream.version
            )

    async def GetPortfolioState(
        self, request: pb.GetPortfolioStateRequest, context: Context
    ) -> pb.GetPortfolioStateResponse:
        """Return a finished run's portfolio at an instant, fills at that instant included."""
        run_id, time_ns = messages.portfolio_time(request)
        version, state = await self._playback.portfolio(run_id, time_ns)
        return pb.GetPortfolioStateResponse(
            state=messages.portfolio_to_proto(state), content_version=version
        )

    async def StreamEquity(
        self, request: pb.StreamEquityRequest, context: Context
    ) -> AsyncGenerator[pb.StreamEquityResponse, None]:
        """Stream a page of a finished run's equity curve, sampled or downsampled, in chunks."""
        query = messages.equity_query(request)
        page = self._page_tokens.page(
            request,
            query=f"StreamEquity:{query.fingerprint()}",
            keys=messages.POSITION_KEYS,
            default_size=messages.EQUITY_PAGE_MAX,
            max_size=messages.EQUITY_PAGE_MAX,
        )
        result = await self._playback.equity(
            query, after=messages.page_position(page.after), size=page.size
        )
        token = messages.next_page_token(page, result.version, result.next_offset)
        for index, (times, values, drawdowns) in enumerate(result.chunks):
            yield pb.StreamEquityResponse(
                chunk=pb.EquityChunk(
                    times=times.tolist(),
                    equity=values.tolist(),
                    drawdown=drawdowns.tolist() if query.include_drawdown else (),
                ),
                next_page_token=token if index == result.chunk_count - 1 else "",
                total_points=result.total_points,
                content_version=result.version,
            )
        if result.chunk_count == 0:
            yield pb.StreamEquityResponse(
                chunk=pb.EquityChunk(),
                next_page_token=token,
                total_points=result.total_points,
                content_version=result.version,
            )

    async def ListFills(
        self, request: pb.ListFillsRequest, context: Context
    ) -> pb.ListFillsResponse:
        """Return a page of a finished run's fills in a time range, in time order."""
        query = messages.fill_query(request)
        page = self._page_tokens.page(
            request,
            query=f"ListFills:{query.fingerprint()}",
            keys=messages.POSITION_KEYS,
            default_size=messages.FILLS_PAGE_DEFAULT,
            max_size=messages.FILLS_PAGE_MAX,
        )
        result = await self._playback.fills(
            query, after=messages.page_position(page.after), size=page.size
        )
        return pb.ListFillsResponse(
            fills=[messages.fill_to_proto(fill) for fill in result.fills],
            next_page_token=messages.next_page_token(page, result.version, result.next_offset),
            content_version=result.version,
        )

    async def ListTrades(
        self, request: pb.ListTradesRequest, context: Context
    ) -> pb.ListTradesResponse:
        """Return a page of a finished run's trades exiting in a time range, by exit time."""
        query = messages.trade_query(request)
        page = self._page_tokens.page(
            request,
            query=f"ListTrades:{query.fingerprint()}",
            keys=messages.POSITION_KEYS,
            default_size=messages.FILLS_PAGE_DEFAULT,
            max_size=messages.FILLS_PAGE_MAX,
        )
        result = await self._playback.trades(
            query, after=messages.page_position(page.after), size=page.size
        )
        return pb.ListTradesResponse(
            trades=[messages.trade_to_proto(trade) for trade in result.trades],
            next_page_token=messages.next_page_token(page, result.version, result.next_offset),
            content_version=result.version,
        )

    async def ExportBacktest(
        self, request: pb.ExportBacktestRequest, context: Context
    ) -> AsyncGenerator[pb.ExportBacktestResponse, None]:
        """Stream a finished run's results as files, each in chunks ending with its SHA-256."""
        query = messages.export_query(request)
        run, tables = await self._playback.export(query)
        for part in query.parts:
            file = tables.get(part) or messages.json_part(part, run, query.chunk_size)
            digest, size = hashlib.sha256(), 0
            piece = await asyncio.to_thread(next, file.pieces, None)
            while piece is not None:
                following = await asyncio.to_thread(next, file.pieces, None)
                digest.update(piece)
                size += len(piece)
                last = following is None
                yield pb.ExportBacktestResponse(
                    file_name=file.name,
                    content_type=file.content_type,
                    data=piece,
                    last_chunk=last,
                    file_size=size if last else 0,
                    sha256=digest.hexdigest() if last else "",
                )
                piece = following
