"""The playback RPCs of BacktestService: proto <-> domain over memory-mapped results (a mixin).

Every request is validated first (INVALID_ARGUMENT naming the field), then the run is resolved
(NOT_FOUND, or FAILED_PRECONDITION unless SUCCEEDED). Every response carries the run's content
version; page tokens are bound to it, so a token outlives nothing but the results it paged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest.playback import candles, equity, fills
from tapedeck_backtest.playback.portfolio import decimal_text, portfolio_at
from tapedeck_backtest.playback.store import ResultStore
from tapedeck_common.errors import FieldViolation, InvalidArgument, Unavailable
from tapedeck_common.pagination import decode_page_token, encode_page_token, page_size
from tapedeck_common.validation import (
    nanos_to_timestamp,
    resource_id,
    time_range_nanos,
    timestamp_nanos,
)

Context = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")

INDICATOR_COLUMNS = {
    pb.INDICATOR_SMA_20: "sma_20",
    pb.INDICATOR_SMA_50: "sma_50",
    pb.INDICATOR_EMA_20: "ema_20",
    pb.INDICATOR_RSI_14: "rsi_14",
    pb.INDICATOR_MACD: "macd",
    pb.INDICATOR_MACD_SIGNAL: "macd_signal",
    pb.INDICATOR_MACD_HISTOGRAM: "macd_histogram",
    pb.INDICATOR_ATR_14: "atr_14",
    pb.INDICATOR_BOLLINGER_UPPER: "bollinger_upper",
    pb.INDICATOR_BOLLINGER_MIDDLE: "bollinger_middle",
    pb.INDICATOR_BOLLINGER_LOWER: "bollinger_lower",
}
_SIDES = {"BUY": pb.ORDER_SIDE_BUY, "SELL": pb.ORDER_SIDE_SELL}
MAX_CANDLES = 10_000_000
MAX_POINTS = 1_000_000
# Work above this many source rows goes to a thread so the event loop stays responsive.
_OFF_LOOP_ROWS = 200_000


def _chunk_size(value: int, *, default: int, low: int, high: int) -> int:
    if value == 0:
        return default
    if value < low or value > high:
        raise InvalidArgument(
            [FieldViolation("chunk_size", f"must be 0 or between {low} and {high}")]
        )
    return value


def _non_negative(value: int, field: str, *, maximum: int) -> int:
    if value < 0 or value > maximum:
        raise InvalidArgument([FieldViolation(field, f"must be between 0 and {maximum}")])
    return value


def _offset(token: str, *, query: str, limit: int) -> int:
    position = decode_page_token(token, query=query)
    if position is None:
        return 0
    offset = position.get("o")
    if not isinstance(offset, int) or offset < 0 or offset > limit:
        raise InvalidArgument([FieldViolation("page_token", "is not a token this service issued")])
    return offset


async def _compute(rows: int, work: Callable[[], T]) -> T:
    if rows > _OFF_LOOP_ROWS:
        return await asyncio.to_thread(work)
    return work()


# --- playback ---


class PlaybackRpcs:
    """StreamCandles, GetPortfolioState, StreamEquity and ListFills."""

    _result_store: ResultStore | None = None

    def attach_playback(self, store: ResultStore) -> None:
        """Plug in the result store (done by the server's build)."""
        self._result_store = store

    @property
    def _results(self) -> ResultStore:
        if self._result_store is None:
            raise Unavailable("playback is not enabled in this process")
        return self._result_store

    async def StreamCandles(
        self, request: pb.StreamCandlesRequest, context: Context
    ) -> AsyncIterator[pb.StreamCandlesResponse]:
        """Stream a window of a finished run's candles, aggregated to at most max_candles."""
        run_id = resource_id(request.backtest, collection="backtests", field="backtest")
        start, end = time_range_nanos(request.time_range, field="time_range")
        max_candles = _non_negative(request.max_candles, "max_candles", maximum=MAX_CANDLES)
        chunk_size = _chunk_size(request.chunk_size, default=5_000, low=100, high=50_000)
        violations = [
            FieldViolation(
                f"indicators[{i}]", "must be one of the Indicator values, not unspecified"
            )
            for i, indicator in enumerate(request.indicators)
            if indicator not in INDICATOR_COLUMNS
        ]
        if violations:
            raise InvalidArgument(violations)
        columns = [INDICATOR_COLUMNS[indicator] for indicator in request.indicators]
        version, files = await self._results.open(run_id)
        plan = candles.window(files, start_ns=start, end_ns=end, max_candles=max_candles)
        produced = candles.blocks(files, plan, indicators=columns, chunk_size=chunk_size)
        rows = plan.source_count if plan.aggregated else chunk_size
        sent = False
        while True:
            block = await _compute(rows, lambda: next(produced, None))
            if block is None:
                break
            sent = True
            yield pb.StreamCandlesResponse(
                chunk=pb.CandleChunk(
                    times=block.times.tolist(),
                    open=block.columns["open"].tolist(),
                    high=block.columns["high"].tolist(),
                    low=block.columns["low"].tolist(),
                    close=block.columns["close"].tolist(),
                    volume=block.columns["volume"].tolist(),
                    indicators=[
                        pb.IndicatorColumn(indicator=indicator, values=values.tolist())
                        for indicator, values in zip(
                            request.indicators, block.indicators, strict=True
                        )
                    ],
                ),
                bucket_width_nanos=plan.bucket_ns,
                total_source_candles=plan.source_count,
                content_version=version,
            )
        if not sent:  # an empty window still answers with its version and counts
            yield pb.StreamCandlesResponse(
                chunk=pb.CandleChunk(
                    indicators=[pb.IndicatorColumn(indicator=i) for i in request.indicators]
                ),
                bucket_width_nanos=plan.bucket_ns,
                total_source_candles=0,
                content_version=version,
            )

    async def GetPortfolioState(
        self, request: pb.GetPortfolioStateRequest, context: Context
    ) -> pb.GetPortfolioStateResponse:
        """Return a finished run's portfolio at an instant, fills at that instant included."""
        run_id = resource_id(request.backtest, collection="backtests", field="backtest")
        if not request.HasField("time"):
            raise InvalidArgument([FieldViolation("time", "is required")])
        time_ns = timestamp_nanos(request.time, field="time")
        version, files = await self._results.open(run_id)
        state = portfolio_at(files, time_ns)
        return pb.GetPortfolioStateResponse(
            state=pb.PortfolioState(
                time=nanos_to_timestamp(time_ns),
                cash=[
                    common_pb2.Money(currency=currency, amount=decimal_text(amount))
                    for currency, amount in state.cash
                ],
                equity=decimal_text(state.equity),
                realized_pnl=decimal_text(state.realized_pnl),
                unrealized_pnl=decimal_text(state.unrealized_pnl),
                positions=[
                    pb.Position(
                        instrument_id=p.instrument_id,
                        quantity=decimal_text(p.quantity),
                        average_price=decimal_text(p.average_price),
                        mark_price=decimal_text(p.mark_price),
                        unrealized_pnl=decimal_text(p.unrealized_pnl),
                        realized_pnl=decimal_text(p.realized_pnl),
                    )
                    for p in state.positions
                ],
                fill_count=state.fill_count,
                fees=decimal_text(state.fees),
            ),
            content_version=version,
        )

    async def StreamEquity(
        self, request: pb.StreamEquityRequest, context: Context
    ) -> AsyncIterator[pb.StreamEquityResponse]:
        """Stream a page of a finished run's equity curve, sampled or downsampled, in chunks."""
        run_id = resource_id(request.backtest, collection="backtests", field="backtest")
        start, end = time_range_nanos(request.time_range, field="time_range")
        size = _non_negative(request.page_size, "page_size", maximum=2**31 - 1)
        every = _non_negative(request.sample_every, "sample_every", maximum=2**31 - 1)
        max_points = _non_negative(request.max_points, "max_points", maximum=MAX_POINTS)
        if max_points in (1, 2):
            raise InvalidArgument(
                [FieldViolation("max_points", "must be 0 (no limit) or at least 3")]
            )
        chunk_size = _chunk_size(request.chunk_size, default=10_000, low=100, high=100_000)
        version, files = await self._results.open(run_id)
        query = f"equity|{run_id}|{version}|{start}|{end}|{every}|{max_points}"
        offset = _offset(request.page_token, query=query, limit=files.equity_times.size)
        window_rows = files.equity_times.size if max_points else 0
        selection = await _compute(
            window_rows,
            lambda: equity.select(
                files, start_ns=start, end_ns=end, sample_every=every, max_points=max_points
            ),
        )
        count = size if size else len(selection)
        more = offset + count < len(selection)
        token = encode_page_token({"o": offset + count}, query=query) if more else ""
        in_page = max(0, min(offset + count, len(selection)) - offset)
        chunks = (in_page + chunk_size - 1) // chunk_size
        produced = equity.blocks(
            files, selection, offset=offset, count=count, chunk_size=chunk_size
        )
        for index, (times, values) in enumerate(produced):
            yield pb.StreamEquityResponse(
                chunk=pb.EquityChunk(times=times.tolist(), equity=values.tolist()),
                next_page_token=token if index == chunks - 1 else "",
                total_points=selection.total_points,
                content_version=version,
            )
        if chunks == 0:
            yield pb.StreamEquityResponse(
                chunk=pb.EquityChunk(),
                next_page_token=token,
                total_points=selection.total_points,
                content_version=version,
            )

    async def ListFills(
        self, request: pb.ListFillsRequest, context: Context
    ) -> pb.ListFillsResponse:
        """Return a page of a finished run's fills in a time range, in time order."""
        run_id = resource_id(request.backtest, collection="backtests", field="backtest")
        start, end = time_range_nanos(request.time_range, field="time_range")
        size = page_size(request.page_size, default=100, maximum=10_000)
        version, files = await self._results.open(run_id)
        query = f"fills|{run_id}|{version}|{start}|{end}"
        span = fills.window(files, start_ns=start, end_ns=end)
        offset = _offset(request.page_token, query=query, limit=span.hi - span.lo)
        rows = fills.page(files, span, offset=offset, size=size)
        more = offset + len(rows) < span.hi - span.lo
        return pb.ListFillsResponse(
            fills=[
                pb.Fill(
                    fill_id=row["fill_id"],
                    time=nanos_to_timestamp(row["time"]),
                    instrument_id=row["instrument_id"],
                    side=_SIDES.get(row["side"], pb.ORDER_SIDE_UNSPECIFIED),
                    quantity=row["quantity"],
                    price=row["price"],
                    commission=row["commission"],
                    commission_currency=row["commission_currency"],
                    order_id=row["order_id"],
                    position_id=row["position_id"],
                )
                for row in rows
            ],
            next_page_token=encode_page_token({"o": offset + len(rows)}, query=query)
            if more
            else "",
            content_version=version,
        )
