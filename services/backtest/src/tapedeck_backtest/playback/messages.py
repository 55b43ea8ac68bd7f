"""Proto <-> domain for playback: requests checked field by field, results as columnar chunks."""

from __future__ import annotations

from decimal import Decimal

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest.playback.candles import CandleBlock, CandleWindow, timeframe_label
from tapedeck_backtest.playback.domain import (
    CandleQuery,
    EquityQuery,
    FillQuery,
    PagePosition,
    PortfolioAt,
    TradeQuery,
)
from tapedeck_backtest.playback.exports import (
    ALL_PARTS,
    ExportFile,
    ExportFormat,
    ExportPart,
    ExportQuery,
    json_file,
)
from tapedeck_backtest.runs.domain import Fill, Run
from tapedeck_backtest.runs.messages import run_id, spec_to_proto, stats_to_proto
from tapedeck_backtest.runs.trades import Trade
from tapedeck_common.enums import EnumMapping
from tapedeck_common.errors import FieldViolation, InvalidArgument
from tapedeck_common.paging import Page, Position
from tapedeck_common.validation import nanos_to_timestamp, time_range_nanos, timestamp_nanos

INDICATORS = EnumMapping(
    pb.Indicator.DESCRIPTOR,
    {
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
    },
)
SIDES = EnumMapping(pb.OrderSide.DESCRIPTOR, {pb.ORDER_SIDE_BUY: "BUY", pb.ORDER_SIDE_SELL: "SELL"})
TRADE_SIDES = EnumMapping(
    pb.TradeSide.DESCRIPTOR, {pb.TRADE_SIDE_LONG: "LONG", pb.TRADE_SIDE_SHORT: "SHORT"}
)
EXPORT_PARTS = EnumMapping(
    pb.ExportPart.DESCRIPTOR,
    {
        pb.EXPORT_PART_CANDLES: ExportPart.CANDLES,
        pb.EXPORT_PART_FILLS: ExportPart.FILLS,
        pb.EXPORT_PART_TRADES: ExportPart.TRADES,
        pb.EXPORT_PART_EQUITY: ExportPart.EQUITY,
        pb.EXPORT_PART_SPEC: ExportPart.SPEC,
        pb.EXPORT_PART_STATISTICS: ExportPart.STATISTICS,
    },
)
EXPORT_FORMATS = EnumMapping(
    pb.ExportFormat.DESCRIPTOR,
    {pb.EXPORT_FORMAT_CSV: ExportFormat.CSV, pb.EXPORT_FORMAT_PARQUET: ExportFormat.PARQUET},
    unspecified=ExportFormat.CSV,
)
MAX_CANDLES = 10_000_000
MAX_TIMEFRAME_NS = 52 * 7 * 86_400 * 1_000_000_000
MAX_POINTS = 1_000_000
EQUITY_PAGE_MAX = 2**31 - 1  # page_size 0: the whole selection
FILLS_PAGE_DEFAULT = 100
FILLS_PAGE_MAX = 10_000
POSITION_KEYS = (str, int)
"""The types of a playback page token's position: the content version and an offset."""


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


def candle_query(request: pb.StreamCandlesRequest) -> CandleQuery:
    """Return a checked StreamCandles request."""
    backtest = run_id(request.backtest, field="backtest")
    start, end = time_range_nanos(request.time_range, field="time_range")
    max_candles = _non_negative(request.max_candles, "max_candles", maximum=MAX_CANDLES)
    chunk_size = _chunk_size(request.chunk_size, default=5_000, low=100, high=50_000)
    indicators: list[str] = []
    violations: list[FieldViolation] = []
    for index, indicator in enumerate(request.indicators):
        try:
            indicators.append(INDICATORS.from_proto(indicator, field=f"indicators[{index}]"))
        except InvalidArgument as error:
            violations.extend(error.violations)
    timeframe_ns: int | None = None
    if request.HasField("timeframe"):
        timeframe_ns = request.timeframe.ToNanoseconds()
        if (
            timeframe_ns < 1_000_000_000
            or timeframe_ns % 1_000_000_000
            or timeframe_ns > MAX_TIMEFRAME_NS
        ):
            violations.append(
                FieldViolation("timeframe", "must be whole seconds, from 1 s to 52 weeks")
            )
    if violations:
        raise InvalidArgument(violations)
    return CandleQuery(
        backtest, start, end, max_candles, tuple(indicators), chunk_size, timeframe_ns
    )


def portfolio_time(request: pb.GetPortfolioStateRequest) -> tuple[str, int]:
    """Return the run and the instant a GetPortfolioState request asks about."""
    backtest = run_id(request.backtest, field="backtest")
    if not request.HasField("time"):
        raise InvalidArgument([FieldViolation("time", "is required")])
    return backtest, timestamp_nanos(request.time, field="time")


def equity_query(request: pb.StreamEquityRequest) -> EquityQuery:
    """Return a checked StreamEquity request (its page size and token are read by paging)."""
    backtest = run_id(request.backtest, field="backtest")
    start, end = time_range_nanos(request.time_range, field="time_range")
    every = _non_negative(request.sample_every, "sample_every", maximum=2**31 - 1)
    max_points = _non_negative(request.max_points, "max_points", maximum=MAX_POINTS)
    if max_points in (1, 2):
        raise InvalidArgument([FieldViolation("max_points", "must be 0 (no limit) or at least 3")])
    return EquityQuery(
        backtest,
        start,
        end,
        every,
        max_points,
        equity_chunk_size(request.chunk_size),
        request.include_drawdown,
    )


def equity_chunk_size(value: int) -> int:
    """Return an equity stream's points per message (0: 10,000; else 100 to 100,000)."""
    return _chunk_size(value, default=10_000, low=100, high=100_000)


def fill_query(request: pb.ListFillsRequest) -> FillQuery:
    """Return a checked ListFills request (its page size and token are read by paging)."""
    backtest = run_id(request.backtest, field="backtest")
    start, end = time_range_nanos(request.time_range, field="time_range")
    return FillQuery(backtest, start, end)


def trade_query(request: pb.ListTradesRequest) -> TradeQuery:
    """Return a checked ListTrades request (its page size and token are read by paging)."""
    backtest = run_id(request.backtest, field="backtest")
    start, end = time_range_nanos(request.time_range, field="time_range")
    side = (
        None
        if request.side == pb.TRADE_SIDE_UNSPECIFIED
        else TRADE_SIDES.from_proto(request.side, field="side")
    )
    return TradeQuery(backtest, start, end, side)


def page_position(after: Position | None) -> PagePosition | None:
    """Return where a page resumes, from a checked page-token position."""
    return None if after is None else PagePosition(str(after[0]), int(after[1]))


def next_page_token(page: Page, version: str, next_offset: int | None) -> str:
    """Return the token of the page at `next_offset` of these results ("" after the last)."""
    return "" if next_offset is None else page.token_after((version, next_offset))


def candles_to_proto(
    block: CandleBlock, *, window: CandleWindow, indicators: tuple[str, ...], version: str
) -> pb.StreamCandlesResponse:
    """Return one chunk of candles with the window's bucket width and source count."""
    return pb.StreamCandlesResponse(
        chunk=pb.CandleChunk(
            times=block.times.tolist(),
            open=block.columns["open"].tolist(),
            high=block.columns["high"].tolist(),
            low=block.columns["low"].tolist(),
            close=block.columns["close"].tolist(),
            volume=block.columns["volume"].tolist(),
            indicators=[
                pb.IndicatorColumn(indicator=INDICATORS.to_proto(name), values=values.tolist())
                for name, values in zip(indicators, block.indicators, strict=True)
            ],
        ),
        bucket_width_nanos=window.bucket_ns,
        total_source_candles=window.source_count,
        content_version=version,
        timeframe=timeframe_label(window.bucket_ns),
    )


def no_candles_to_proto(
    *, window: CandleWindow, indicators: tuple[str, ...], version: str
) -> pb.StreamCandlesResponse:
    """Return the answer to an empty window: its version and counts, no candles."""
    return pb.StreamCandlesResponse(
        chunk=pb.CandleChunk(
            indicators=[pb.IndicatorColumn(indicator=INDICATORS.to_proto(i)) for i in indicators]
        ),
        bucket_width_nanos=window.bucket_ns,
        total_source_candles=0,
        content_version=version,
        timeframe=timeframe_label(window.bucket_ns),
    )


def decimal_text(value: Decimal) -> str:
    """Return a decimal as plain notation (never an exponent), exact."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def portfolio_to_proto(state: PortfolioAt) -> pb.PortfolioState:
    """Return a portfolio at an instant, money as plain decimal strings."""
    return pb.PortfolioState(
        time=nanos_to_timestamp(state.time_ns),
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
    )


def fill_to_proto(fill: Fill) -> pb.Fill:
    """Return one fill, amounts exactly as the run stored them."""
    return pb.Fill(
        fill_id=fill.fill_id,
        time=nanos_to_timestamp(fill.time),
        instrument_id=fill.instrument_id,
        side=SIDES.to_proto(fill.side),
        quantity=str(fill.quantity),
        price=str(fill.price),
        commission=str(fill.commission),
        commission_currency=fill.commission_currency,
        order_id=fill.order_id,
        position_id=fill.position_id,
    )


def trade_to_proto(trade: Trade) -> pb.Trade:
    """Return one trade, amounts exactly as the run stored them."""
    holding = Duration()
    holding.FromNanoseconds(trade.holding_ns)
    return pb.Trade(
        trade_id=trade.trade_id,
        position_id=trade.position_id,
        side=TRADE_SIDES.to_proto(trade.side),
        quantity=str(trade.quantity),
        entry_time=nanos_to_timestamp(trade.entry_time),
        exit_time=nanos_to_timestamp(trade.exit_time),
        average_entry_price=str(trade.average_entry_price),
        average_exit_price=str(trade.average_exit_price),
        realized_pnl=str(trade.realized_pnl),
        fees=str(trade.fees),
        holding_time=holding,
        mae=trade.mae,
        mfe=trade.mfe,
    )


def export_query(request: pb.ExportBacktestRequest) -> ExportQuery:
    """Return what an ExportBacktest request asks."""
    parts = tuple(
        EXPORT_PARTS.from_proto(part, field=f"parts[{index}]")
        for index, part in enumerate(request.parts)
    )
    if len(set(parts)) != len(parts):
        raise InvalidArgument([FieldViolation("parts", "names a part more than once")])
    return ExportQuery(
        run_id=run_id(request.backtest, field="backtest"),
        form=EXPORT_FORMATS.from_proto(request.format, field="format"),
        parts=parts or ALL_PARTS,
        chunk_size=_chunk_size(request.chunk_size, default=1 << 20, low=64 << 10, high=3 << 20),
    )


def json_part(part: ExportPart, run: Run, chunk_size: int) -> ExportFile:
    """Return the spec or statistics of a run as GetBacktest shows them, in proto JSON."""
    if part is ExportPart.SPEC:
        return json_file(part, json_format.MessageToJson(spec_to_proto(run.spec)), chunk_size)
    assert run.stats is not None  # a SUCCEEDED run has statistics
    return json_file(part, json_format.MessageToJson(stats_to_proto(run.stats)), chunk_size)
