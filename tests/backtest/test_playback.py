"""Playback RPCs on synthetic finished runs through a real in-process server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest.playback import equity
from tapedeck_backtest.playback.candles import STANDARD_TIMEFRAMES_NS as STANDARD
from tapedeck_backtest.playback.files import SIDECAR, build_sidecar, open_run
from tapedeck_backtest.runs import results
from tapedeck_backtest.runs.domain import AccountKind, Fill, RunState
from tapedeck_backtest.runs.results import INDICATOR_COLUMNS, Candles
from tests.backtest.playback_support import (
    MINUTE,
    T0,
    SyntheticRun,
    all_fills,
    fill,
    insert_run,
    price_at,
    random_prices,
    replay,
    sessions_of,
    time_range,
    ts,
    write_run,
)
from tests.backtest.runs_support import Service, components, running_service
from tests.support import field_violations

WEEK = 7 * 86_400 * 10**9

ALL_INDICATORS = [
    pb.INDICATOR_SMA_20,
    pb.INDICATOR_SMA_50,
    pb.INDICATOR_EMA_20,
    pb.INDICATOR_RSI_14,
    pb.INDICATOR_MACD,
    pb.INDICATOR_MACD_SIGNAL,
    pb.INDICATOR_MACD_HISTOGRAM,
    pb.INDICATOR_ATR_14,
    pb.INDICATOR_BOLLINGER_UPPER,
    pb.INDICATOR_BOLLINGER_MIDDLE,
    pb.INDICATOR_BOLLINGER_LOWER,
]
HYPOTHESIS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """The backtest service on SQLite with no workers (results are written by the tests)."""
    data_dir = tmp_path / "svc"
    data_dir.mkdir()
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", data_dir, workers=0
    ) as svc:
        yield svc


async def publish(service: Service, run: SyntheticRun) -> str:
    """Make a written run visible as SUCCEEDED; return its resource name."""
    await insert_run(sessions_of(service.app), run.run_id, state=RunState.SUCCEEDED)
    return f"backtests/{run.run_id}"


# --- GetPortfolioState against a replay of ListFills


@st.composite
def trading(draw: st.DrawFn) -> tuple[AccountKind, list[Fill], list[int]]:
    account = draw(st.sampled_from([AccountKind.MARGIN, AccountKind.CASH]))
    count = draw(st.integers(0, 25))
    fills: list[Fill] = []
    at = T0 + draw(st.integers(0, 30)) * 1_000_000_000
    for number in range(count):
        at += draw(st.sampled_from([0, 1, 7, 59, 60, 61, 300])) * 1_000_000_000  # same instant too
        side = draw(st.sampled_from(["BUY", "SELL"]))
        quantity = Decimal(draw(st.integers(1, 3000))) / 1000  # partial closes and flips
        price = Decimal(draw(st.integers(2_900_000, 3_100_000))) / 100
        in_base = account is AccountKind.CASH and draw(st.booleans())
        commission = (
            Decimal(draw(st.integers(0, 50))) / 100_000
            if in_base
            else Decimal(draw(st.integers(0, 900))) / 100
        )
        fills.append(
            fill(
                at,
                side,
                str(quantity),
                str(price),
                commission=str(commission),
                currency="BTC" if in_base else "USDT",
                number=number,
            )
        )
    end = at + 10 * MINUTE
    probes = draw(st.lists(st.integers(T0 - MINUTE, end + MINUTE), min_size=1, max_size=8))
    probes += [f.time for f in fills[:: max(1, len(fills) // 4)]]
    return account, fills, probes


@given(case=trading())
@HYPOTHESIS
async def test_portfolio_state_at_any_instant_equals_a_replay_of_list_fills(
    service: Service, case: tuple[AccountKind, list[Fill], list[int]]
) -> None:
    account, fills, probes = case
    last = max([f.time for f in fills], default=T0) + 10 * MINUTE
    prices = random_prices(
        start_ns=T0, count=int((last - T0) // (10 * 10**9)) + 2, step_ns=10 * 10**9, seed=len(fills)
    )
    balances = (
        (("BTC", Decimal("2")), ("USDT", Decimal("100000")))
        if account is AccountKind.CASH
        else (("USDT", Decimal("100000")),)
    )
    run = write_run(
        service.data_dir / "runs", prices=prices, fills=fills, account=account, balances=balances
    )
    name = await publish(service, run)
    listed = await all_fills(service.stub, name)
    assert [f.fill_id for f in listed] == [f.fill_id for f in run.fills]
    marks = _marks(run)
    for probe in probes:
        reply = await service.stub.GetPortfolioState(
            pb.GetPortfolioStateRequest(backtest=name, time=ts(probe))
        )
        state = reply.state
        expected = replay(listed, until_ns=probe, account=account, balances=dict(balances))
        mark = _mark_at(marks, probe)
        assert state.fill_count == expected.fill_count
        assert Decimal(state.realized_pnl) == expected.realized_pnl
        assert Decimal(state.fees) == expected.fees
        cash = {m.currency: Decimal(m.amount) for m in state.cash}
        assert cash["USDT"] == expected.cash
        assert cash.get("BTC", Decimal(0)) == expected.base
        unrealized = expected.position * (mark - expected.average_price)
        assert Decimal(state.unrealized_pnl) == unrealized
        equity = (
            expected.cash
            + expected.base * mark
            + (unrealized if account is AccountKind.MARGIN else 0)
        )
        assert Decimal(state.equity) == equity
        if expected.position == 0:
            assert list(state.positions) == []
        else:
            (position,) = state.positions
            assert Decimal(position.quantity) == expected.position
            assert Decimal(position.average_price) == expected.average_price
            assert Decimal(position.mark_price) == mark
            assert Decimal(position.realized_pnl) == expected.realized_pnl
        assert reply.content_version


def _marks(run: SyntheticRun) -> list[tuple[int, int, Decimal]]:
    # Independent of the writer: bar closes at their close time, then the market price at fills.
    frame = pd.DataFrame({"t": run.prices.times, "p": run.prices.prices})
    bars = frame.groupby(frame.t // run.interval_ns * run.interval_ns).p.last()
    marks = [(int(t) + run.interval_ns, 0, Decimal(repr(float(p)))) for t, p in bars.items()]
    marks += [(f.time, 1, price_at(run.prices, f.time)) for f in run.fills]
    ordered = sorted(marks, key=lambda m: (m[0], m[1]))
    # One point per instant: the last mark at it (a fill's after the bar close).
    return [
        m
        for m, after in zip(ordered, [*ordered[1:], None], strict=True)
        if after is None or after[0] != m[0]
    ]


def _mark_at(marks: list[tuple[int, int, Decimal]], at: int) -> Decimal:
    before = [m for m in marks if m[0] <= at]
    return (before[-1] if before else marks[0])[2]


async def test_portfolio_state_books_a_flip_as_close_then_open(service: Service) -> None:
    prices = random_prices(start_ns=T0, count=100, step_ns=10**10, seed=3)
    fills = [
        fill(T0 + 60 * 10**9, "BUY", "2", "30000", commission="3", number=1),
        fill(T0 + 120 * 10**9, "SELL", "0.5", "30100", commission="1", number=2),  # partial close
        fill(T0 + 180 * 10**9, "SELL", "3.5", "30200", commission="2", number=3),  # flip to -2
    ]
    name = await publish(service, write_run(service.data_dir / "runs", prices=prices, fills=fills))
    reply = await service.stub.GetPortfolioState(
        pb.GetPortfolioStateRequest(backtest=name, time=ts(T0 + 180 * 10**9))
    )
    state = reply.state
    assert state.fill_count == 3
    (position,) = state.positions
    assert Decimal(position.quantity) == Decimal("-2")
    assert Decimal(position.average_price) == Decimal("30200")
    # 0.5 * 100 on the partial close, 1.5 * 200 closing the rest before the flip
    assert Decimal(state.realized_pnl) == Decimal("350")
    assert Decimal(state.fees) == Decimal("6")
    assert state.cash[0].currency == "USDT"
    assert Decimal(state.cash[0].amount) == Decimal("100000") + Decimal("350") - Decimal("6")
    before = await service.stub.GetPortfolioState(
        pb.GetPortfolioStateRequest(backtest=name, time=ts(T0 + 180 * 10**9 - 1))
    )
    assert before.state.fill_count == 2


# --- StreamCandles against a direct aggregation


@pytest.fixture
async def candle_run(service: Service) -> tuple[Service, str, pd.DataFrame]:
    prices = random_prices(
        start_ns=T0 + 17 * 10**9, count=30_000, step_ns=15 * 10**9, seed=11, gap_every=5_000
    )
    run = write_run(service.data_dir / "runs", prices=prices, fills=[])
    name = await publish(service, run)
    frame = pq.read_table(service.data_dir / "runs" / run.run_id / "candles.parquet").to_pandas()
    return service, name, frame


async def stream_candles(
    service: Service, request: pb.StreamCandlesRequest
) -> tuple[pd.DataFrame, list[pb.StreamCandlesResponse]]:
    messages = [m async for m in service.stub.StreamCandles(request)]
    frame = pd.DataFrame(
        {
            "time": [t for m in messages for t in m.chunk.times],
            "open": [v for m in messages for v in m.chunk.open],
            "high": [v for m in messages for v in m.chunk.high],
            "low": [v for m in messages for v in m.chunk.low],
            "close": [v for m in messages for v in m.chunk.close],
            "volume": [v for m in messages for v in m.chunk.volume],
        }
    )
    for position, indicator in enumerate(request.indicators):
        frame[pb.Indicator.Name(indicator)] = [
            v for m in messages for v in m.chunk.indicators[position].values
        ]
    return frame, messages


@given(
    window=st.tuples(st.integers(-10, 8_000), st.integers(1, 8_000)),
    max_candles=st.sampled_from([0, 1, 2, 3, 7, 100, 499, 1_000, 5_000, 10_000]),
    chunk_size=st.sampled_from([0, 100, 333]),
    indicators=st.lists(st.sampled_from(ALL_INDICATORS), max_size=4),
)
@HYPOTHESIS
async def test_aggregated_candles_equal_a_direct_aggregation_of_the_raw_ones(
    candle_run: tuple[Service, str, pd.DataFrame],
    window: tuple[int, int],
    max_candles: int,
    chunk_size: int,
    indicators: list[int],
) -> None:
    service, name, raw = candle_run
    start = T0 + window[0] * MINUTE
    end = start + window[1] * MINUTE
    request = pb.StreamCandlesRequest(
        backtest=name,
        time_range=time_range(start, end),
        max_candles=max_candles,
        indicators=indicators,
        chunk_size=chunk_size,
    )
    got, messages = await stream_candles(service, request)
    inside = raw[(raw.time >= start) & (raw.time < end)]
    width = messages[0].bucket_width_nanos
    assert all(m.total_source_candles == len(inside) for m in messages)
    assert {m.content_version for m in messages} != {""}
    assert all(len(m.chunk.times) <= (chunk_size or 5_000) for m in messages)
    if max_candles == 0 or len(inside) <= max_candles:
        assert width == MINUTE
        expected = inside.reset_index(drop=True)
    else:
        assert width > MINUTE
        assert len(got) <= max_candles
        # The smallest standard timeframe that fits, on the exchanges' grid (weeks from Monday);
        # one or two buckets may be aligned to the window's first candle instead.
        monday = 4 * 86_400 * 10**9
        smaller = [w for w in STANDARD if MINUTE < w < width]
        if width in STANDARD:
            for narrower in smaller:
                edge = monday if narrower % WEEK == 0 else 0
                count = (inside.time - edge) // narrower
                assert count.iloc[-1] - count.iloc[0] + 1 > max_candles, narrower
        else:
            assert width % WEEK == 0 or max_candles <= 2
        origin = monday if width % WEEK == 0 else 0
        if (got.time.iloc[0] - origin) % width != 0:
            assert max_candles <= 2
            origin = int(inside.time.iloc[0])
        expected = buckets(inside, width, origin)
        # Indicators of the timeframe itself: TA-Lib over the run's buckets up to the window's
        # end, as a chart of the run at that timeframe shows them (a bucket the window starts
        # inside: all of it; one it ends inside: up to the end, as the candle shown).
        whole = buckets(raw[raw.time < end], width, origin)
        computed = talib_indicators(whole).set_index(whole.time)
        for column in INDICATOR_COLUMNS:
            expected[column] = computed.loc[expected.time, column].to_numpy()
    assert got.time.tolist() == expected.time.tolist()
    for column in ("open", "high", "low", "close"):
        assert got[column].tolist() == expected[column].tolist()
    np.testing.assert_allclose(got.volume, expected.volume, rtol=1e-12)
    for indicator in indicators:
        column = INDICATOR_COLUMNS[ALL_INDICATORS.index(indicator)]
        np.testing.assert_allclose(
            got[pb.Indicator.Name(indicator)], expected[column].to_numpy(), rtol=1e-12
        )


def buckets(candles: pd.DataFrame, width: int, origin: int) -> pd.DataFrame:
    groups = candles.groupby((candles.time - origin) // width * width + origin, sort=True)
    return pd.DataFrame(
        {
            "time": groups.time.first().index.astype(np.int64),
            "open": groups.open.first().to_numpy(),
            "high": groups.high.max().to_numpy(),
            "low": groups.low.min().to_numpy(),
            "close": groups.close.last().to_numpy(),
            "volume": groups.volume.sum().to_numpy(),
        }
    )


def talib_indicators(bars: pd.DataFrame) -> pd.DataFrame:
    # The run's own indicator definitions (TA-Lib's; checked in test_results.py).
    columns = {c: bars[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")}
    return pd.DataFrame(results.indicators(Candles(bars.time.to_numpy(np.int64), **columns)))


async def test_a_client_may_ask_for_one_timeframe_and_is_told_which_it_got(
    candle_run: tuple[Service, str, pd.DataFrame],
) -> None:
    service, name, raw = candle_run
    for seconds, label in ((60, "1m"), (180, "3m"), (4 * 3600, "4h"), (7 * 86_400, "1w")):
        request = pb.StreamCandlesRequest(
            backtest=name, timeframe=Duration(seconds=seconds), max_candles=1
        )
        got, messages = await stream_candles(service, request)
        width = seconds * 10**9
        origin = 4 * 86_400 * 10**9 if seconds % (7 * 86_400) == 0 else 0
        assert {(m.timeframe, m.bucket_width_nanos) for m in messages} == {(label, width)}
        buckets = (raw.time - origin) // width * width + origin
        assert got.time.tolist() == sorted(set(buckets.tolist()))
        assert got.close.tolist() == raw.groupby(buckets).close.last().tolist()
    _, messages = await stream_candles(service, pb.StreamCandlesRequest(backtest=name))
    assert messages[0].timeframe == "1m"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream_candles(
            service, pb.StreamCandlesRequest(backtest=name, timeframe=Duration(seconds=90))
        )
    assert field_violations(caught.value) == {
        "timeframe": "90s is not a whole multiple of the run's bar interval (1m)"
    }


async def test_one_candle_summarises_the_whole_run(
    candle_run: tuple[Service, str, pd.DataFrame],
) -> None:
    service, name, raw = candle_run
    request = pb.StreamCandlesRequest(
        backtest=name, max_candles=1, indicators=[pb.INDICATOR_BOLLINGER_LOWER]
    )
    (message,) = [m async for m in service.stub.StreamCandles(request)]
    chunk = message.chunk
    assert chunk.times[0] <= raw.time.iloc[0]
    assert (chunk.open[0], chunk.close[0]) == (raw.open.iloc[0], raw.close.iloc[-1])
    assert (chunk.high[0], chunk.low[0]) == (raw.high.max(), raw.low.min())
    # The indicator of that timeframe: one bucket has no 20-bucket band.
    assert np.isnan(chunk.indicators[0].values[0])
    assert message.total_source_candles == len(raw)
    assert message.bucket_width_nanos > raw.time.iloc[-1] - raw.time.iloc[0]


async def test_candles_stream_only_the_indicators_asked_for_in_request_order(
    candle_run: tuple[Service, str, pd.DataFrame],
) -> None:
    service, name, raw = candle_run
    asked = [pb.INDICATOR_RSI_14, pb.INDICATOR_SMA_20]
    messages = [
        m
        async for m in service.stub.StreamCandles(
            pb.StreamCandlesRequest(backtest=name, indicators=asked)
        )
    ]
    assert sum(len(m.chunk.times) for m in messages) == len(raw)
    assert len(messages) == -(-len(raw) // 5_000)
    for message in messages:
        assert [c.indicator for c in message.chunk.indicators] == asked
    rsi = [v for m in messages for v in m.chunk.indicators[0].values]
    np.testing.assert_array_equal(rsi, raw.rsi_14.to_numpy())


async def test_an_empty_window_answers_one_empty_message_with_the_version(
    candle_run: tuple[Service, str, pd.DataFrame],
) -> None:
    service, name, _ = candle_run
    window = time_range(T0 - 10 * MINUTE, T0 - MINUTE)
    (candles,) = [
        m
        async for m in service.stub.StreamCandles(
            pb.StreamCandlesRequest(backtest=name, time_range=window)
        )
    ]
    assert len(candles.chunk.times) == 0
    assert candles.content_version
    (curve,) = [
        m
        async for m in service.stub.StreamEquity(
            pb.StreamEquityRequest(backtest=name, time_range=window)
        )
    ]
    assert len(curve.chunk.times) == 0
    assert curve.total_points == 0
    assert curve.content_version


# --- StreamEquity paging


@pytest.fixture
async def equity_run(service: Service) -> tuple[Service, str, pd.DataFrame]:
    prices = random_prices(start_ns=T0, count=12_000, step_ns=20 * 10**9, seed=5)
    fills = [
        fill(
            int(prices.times[i]),
            "BUY" if i % 2 else "SELL",
            "0.1",
            f"{prices.prices[i]:.2f}",
            number=i,
        )
        for i in range(100, 11_900, 97)
    ]
    run = write_run(service.data_dir / "runs", prices=prices, fills=fills)
    name = await publish(service, run)
    frame = pq.read_table(service.data_dir / "runs" / run.run_id / "equity.parquet").to_pandas()
    return service, name, frame


@given(
    seed=st.integers(0, 10_000),
    fills_at=st.lists(st.integers(0, 1_499), min_size=1, max_size=40),
    max_points=st.sampled_from([0, 3, 50]),
    sample_every=st.sampled_from([0, 3]),
)
@HYPOTHESIS
async def test_equity_has_one_point_per_instant_and_drawdown_from_the_running_peak(
    service: Service, seed: int, fills_at: list[int], max_points: int, sample_every: int
) -> None:
    prices = random_prices(start_ns=T0, count=1_500, step_ns=20 * 10**9, seed=seed)
    # Fills land on price times, a third of them on bar closes, often several at one instant.
    fills = [
        fill(
            int(prices.times[i]),
            "BUY" if n % 2 else "SELL",
            "0.5",
            f"{prices.prices[i]:.2f}",
            commission="0.01",
            number=n,
        )
        for n, i in enumerate(fills_at)
    ]
    run = write_run(service.data_dir / "runs", prices=prices, fills=fills)
    name = await publish(service, run)

    async def curve(**options: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chunks = [
            m.chunk
            async for m in service.stub.StreamEquity(
                pb.StreamEquityRequest(backtest=name, include_drawdown=True, **options)
            )
        ]
        return tuple(  # type: ignore[return-value]
            np.concatenate([np.array(getattr(c, column)) for c in chunks])
            for column in ("times", "equity", "drawdown")
        )

    times, values, drawdowns = await curve()
    assert np.all(np.diff(times) > 0)
    instants = {int(t) for t in prices.times // MINUTE * MINUTE + MINUTE} | {f.time for f in fills}
    assert set(times.tolist()) == instants
    peaks = np.maximum.accumulate(values)
    np.testing.assert_allclose(drawdowns, 1 - values / peaks, rtol=0, atol=1e-12)
    assert drawdowns.min() >= 0
    # Sampled or downsampled, each point keeps the drawdown of the whole curve at its time.
    picked_times, picked_values, picked_drawdowns = await curve(
        max_points=max_points, sample_every=sample_every
    )
    assert np.all(np.diff(picked_times) > 0)
    index = np.searchsorted(times, picked_times)
    np.testing.assert_array_equal(values[index], picked_values)
    np.testing.assert_array_equal(drawdowns[index], picked_drawdowns)


def request_of(request: pb.StreamEquityRequest, token: str) -> pb.StreamEquityRequest:
    following = pb.StreamEquityRequest()
    following.CopyFrom(request)
    following.page_token = token
    return following


@given(
    window=st.tuples(st.integers(-5, 5_000), st.integers(1, 5_000)),
    page_size=st.sampled_from([0, 1, 99, 1_000, 2_501]),
    sample_every=st.sampled_from([0, 1, 2, 7]),
    chunk_size=st.sampled_from([0, 100, 777]),
)
@HYPOTHESIS
async def test_paging_through_stream_equity_returns_every_point_exactly_once(
    equity_run: tuple[Service, str, pd.DataFrame],
    window: tuple[int, int],
    page_size: int,
    sample_every: int,
    chunk_size: int,
) -> None:
    service, name, curve = equity_run
    start = T0 + window[0] * MINUTE
    end = start + window[1] * MINUTE
    request = pb.StreamEquityRequest(
        backtest=name,
        time_range=time_range(start, end),
        page_size=page_size,
        sample_every=sample_every,
        chunk_size=chunk_size,
    )
    points, pages, versions = await _pages(service, request)
    inside = curve[(curve.time >= start) & (curve.time < end)]
    expected = list(zip(inside.time.tolist(), inside.equity.tolist(), strict=True))[
        :: max(sample_every, 1)
    ]
    assert points == expected
    assert len(versions) == 1
    if page_size:
        assert pages == max(1, -(-len(expected) // page_size))


async def _pages(
    service: Service, request: pb.StreamEquityRequest
) -> tuple[list[tuple[int, float]], int, set[str]]:
    points: list[tuple[int, float]] = []
    versions: set[str] = set()
    pages = 0
    while True:
        token = ""
        async for message in service.stub.StreamEquity(request):
            points.extend(zip(message.chunk.times, message.chunk.equity, strict=True))
            versions.add(message.content_version)
            assert len(message.chunk.times) <= (request.chunk_size or 10_000)
            token = message.next_page_token or token
        pages += 1
        if not token:
            return points, pages, versions
        request = request_of(request, token)


@given(max_points=st.integers(3, 3_000), page_size=st.sampled_from([0, 500]))
@HYPOTHESIS
async def test_max_points_keeps_the_first_and_last_and_pages_the_same_points(
    equity_run: tuple[Service, str, pd.DataFrame], max_points: int, page_size: int
) -> None:
    service, name, curve = equity_run
    request = pb.StreamEquityRequest(backtest=name, max_points=max_points, page_size=page_size)
    points, _, _ = await _pages(service, request)
    assert len(points) == min(max_points, len(curve))
    assert points[0] == (int(curve.time.iloc[0]), float(curve.equity.iloc[0]))
    assert points[-1] == (int(curve.time.iloc[-1]), float(curve.equity.iloc[-1]))
    whole = set(zip(curve.time.tolist(), curve.equity.tolist(), strict=True))
    assert set(points) <= whole
    assert [t for t, _ in points] == sorted(t for t, _ in points)
    one_page, _, _ = await _pages(
        service, pb.StreamEquityRequest(backtest=name, max_points=max_points)
    )
    assert points == one_page


@pytest.mark.parametrize("max_points", [3, 4, 50, 400])
async def test_max_points_keeps_the_deepest_drawdown_so_a_drawdown_pane_reaches_it(
    equity_run: tuple[Service, str, pd.DataFrame], max_points: int
) -> None:
    service, name, curve = equity_run
    request = pb.StreamEquityRequest(backtest=name, max_points=max_points, include_drawdown=True)
    drawdowns: list[float] = []
    times: list[int] = []
    async for message in service.stub.StreamEquity(request):
        drawdowns.extend(message.chunk.drawdown)
        times.extend(message.chunk.times)
    assert len(times) == max_points
    assert times[0] == int(curve.time.iloc[0])
    assert times[-1] == int(curve.time.iloc[-1])
    assert times == sorted(set(times))
    values = curve.equity.to_numpy()
    deepest = float((1 - values / np.maximum.accumulate(values)).max())
    assert max(drawdowns) == pytest.approx(deepest, rel=0, abs=1e-12)


# --- ListFills


async def test_list_fills_pages_a_time_range_in_time_order(
    equity_run: tuple[Service, str, pd.DataFrame],
) -> None:
    service, name, _ = equity_run
    everything = await all_fills(service.stub, name, page_size=10_000)
    start, end = everything[10].time, everything[40].time
    window = time_range(start.seconds * 10**9 + start.nanos, end.seconds * 10**9 + end.nanos)
    found: list[pb.Fill] = []
    token = ""
    while True:
        page = await service.stub.ListFills(
            pb.ListFillsRequest(backtest=name, time_range=window, page_size=4, page_token=token)
        )
        assert len(page.fills) <= 4
        assert page.content_version
        found.extend(page.fills)
        token = page.next_page_token
        if not token:
            break
    assert [f.fill_id for f in found] == [f.fill_id for f in everything[10:40]]
    assert found[0].side in (pb.ORDER_SIDE_BUY, pb.ORDER_SIDE_SELL)
    assert Decimal(found[0].quantity) == Decimal("0.1")


# --- versions, immutability, the sidecar


async def test_every_response_carries_the_runs_content_version(
    equity_run: tuple[Service, str, pd.DataFrame],
) -> None:
    service, name, _ = equity_run
    version = (
        await service.stub.GetBacktest(pb.GetBacktestRequest(name=name))
    ).backtest.content_version
    assert version.startswith("succeeded-")
    candles = [
        m
        async for m in service.stub.StreamCandles(
            pb.StreamCandlesRequest(backtest=name, max_candles=50)
        )
    ]
    curve = [m async for m in service.stub.StreamEquity(pb.StreamEquityRequest(backtest=name))]
    state = await service.stub.GetPortfolioState(
        pb.GetPortfolioStateRequest(backtest=name, time=ts(T0))
    )
    listed = await service.stub.ListFills(pb.ListFillsRequest(backtest=name))
    assert {m.content_version for m in candles + curve} == {version}  # type: ignore[operator]
    assert state.content_version == version == listed.content_version


async def test_the_playback_files_are_built_once_at_the_first_read(
    equity_run: tuple[Service, str, pd.DataFrame],
) -> None:
    service, name, _ = equity_run
    run_dir = service.data_dir / "runs" / name.split("/")[1]
    assert not (run_dir / SIDECAR).exists()
    first = await service.stub.GetPortfolioState(
        pb.GetPortfolioStateRequest(backtest=name, time=ts(T0 + 10**13))
    )
    built = (run_dir / SIDECAR / "done").stat().st_mtime_ns
    again = await service.stub.GetPortfolioState(
        pb.GetPortfolioStateRequest(backtest=name, time=ts(T0 + 10**13))
    )
    assert first == again
    assert (run_dir / SIDECAR / "done").stat().st_mtime_ns == built
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no staging left behind


# --- bad requests, on both databases


async def test_bad_playback_requests_name_the_field(database_url: str, data_dir: Path) -> None:
    async with running_service(database_url, data_dir, workers=0) as service:
        run = write_run(
            data_dir / "runs",
            prices=random_prices(start_ns=T0, count=500, step_ns=10**10, seed=1),
            fills=[],
        )
        name = await publish(service, run)
        queued = "backtests/" + "q" * 32
        await insert_run(sessions_of(service.app), "q" * 32, state=RunState.QUEUED)
        failed = "backtests/" + "f" * 32
        await insert_run(sessions_of(service.app), "f" * 32, state=RunState.FAILED)
        inverted = time_range(T0 + MINUTE, T0)
        stub = service.stub

        async def drain(call: object) -> None:
            if hasattr(call, "__aiter__"):
                async for _ in call:  # type: ignore[attr-defined]
                    pass
            else:
                await call  # type: ignore[misc]

        async def status_of(call: object) -> tuple[grpc.StatusCode, dict[str, str]]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await drain(call)
            return caught.value.code(), field_violations(caught.value)

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        cases: list[tuple[object, grpc.StatusCode, str | None]] = [
            (
                stub.StreamCandles(pb.StreamCandlesRequest(backtest="backtests/nope")),
                grpc.StatusCode.NOT_FOUND,
                None,
            ),
            (
                stub.GetPortfolioState(
                    pb.GetPortfolioStateRequest(backtest="backtests/nope", time=ts(T0))
                ),
                grpc.StatusCode.NOT_FOUND,
                None,
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=queued)),
                grpc.StatusCode.FAILED_PRECONDITION,
                None,
            ),
            (
                stub.ListFills(pb.ListFillsRequest(backtest=failed)),
                grpc.StatusCode.FAILED_PRECONDITION,
                None,
            ),
            (
                stub.GetPortfolioState(pb.GetPortfolioStateRequest(backtest=queued, time=ts(T0))),
                grpc.StatusCode.FAILED_PRECONDITION,
                None,
            ),
            (stub.StreamCandles(pb.StreamCandlesRequest(backtest="runs/x")), invalid, "backtest"),
            (
                stub.StreamCandles(pb.StreamCandlesRequest(backtest=name, time_range=inverted)),
                invalid,
                "time_range.end_time",
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=name, time_range=inverted)),
                invalid,
                "time_range.end_time",
            ),
            (
                stub.ListFills(pb.ListFillsRequest(backtest=name, time_range=inverted)),
                invalid,
                "time_range.end_time",
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=name, max_points=1)),
                invalid,
                "max_points",
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=name, max_points=2)),
                invalid,
                "max_points",
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=name, max_points=-5)),
                invalid,
                "max_points",
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=name, page_size=-1)),
                invalid,
                "page_size",
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=name, sample_every=-2)),
                invalid,
                "sample_every",
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=name, chunk_size=5)),
                invalid,
                "chunk_size",
            ),
            (
                stub.StreamEquity(pb.StreamEquityRequest(backtest=name, page_token="garbage!")),
                invalid,
                "page_token",
            ),
            (
                stub.StreamCandles(
                    pb.StreamCandlesRequest(backtest=name, indicators=[pb.INDICATOR_SMA_20, 99])
                ),
                invalid,
                "indicators[1]",
            ),  # type: ignore[list-item]
            (
                stub.StreamCandles(
                    pb.StreamCandlesRequest(backtest=name, indicators=[pb.INDICATOR_UNSPECIFIED])
                ),
                invalid,
                "indicators[0]",
            ),
            (
                stub.StreamCandles(pb.StreamCandlesRequest(backtest=name, max_candles=-1)),
                invalid,
                "max_candles",
            ),
            (
                stub.ListFills(pb.ListFillsRequest(backtest=name, page_size=-3)),
                invalid,
                "page_size",
            ),
            (
                stub.ListFills(pb.ListFillsRequest(backtest=name, page_token="abc")),
                invalid,
                "page_token",
            ),
            (stub.GetPortfolioState(pb.GetPortfolioStateRequest(backtest=name)), invalid, "time"),
        ]
        for call, code, field in cases:
            got_code, fields = await status_of(call)
            assert got_code == code, (call, got_code)
            if field is not None:
                assert field in fields, (field, fields)
        # A token from one request is refused by another (bound to the query and the version).
        pages = [
            m async for m in stub.StreamEquity(pb.StreamEquityRequest(backtest=name, page_size=10))
        ]
        token = pages[-1].next_page_token
        assert token
        code, fields = await status_of(
            stub.StreamEquity(
                pb.StreamEquityRequest(
                    backtest=name, page_size=10, sample_every=3, page_token=token
                )
            )
        )
        assert code == invalid
        assert "page_token" in fields
        # Refusals name the wrong value and say why.
        _, fields = await status_of(
            stub.StreamCandles(pb.StreamCandlesRequest(backtest=name, indicators=[999]))  # type: ignore[list-item]
        )
        assert fields["indicators[0]"].startswith("999 is not one of INDICATOR_SMA_20, ")
        before_1970 = common_pb2.TimeRange(start_time=Timestamp(seconds=-86_400))
        _, fields = await status_of(
            stub.ListFills(pb.ListFillsRequest(backtest=name, time_range=before_1970))
        )
        assert fields["time_range.start_time"].startswith(
            "1969-12-31T00:00:00Z is before 1970-01-01T00:00:00Z: times are int64 nanoseconds"
        )


async def test_concurrent_first_reads_build_the_files_once_and_agree(
    service: Service,
) -> None:
    prices = random_prices(start_ns=T0, count=3_000, step_ns=10**10, seed=8)
    fills = [
        fill(int(prices.times[i]), "BUY", "0.3", "30000", number=i) for i in range(5, 2_900, 50)
    ]
    name = await publish(service, write_run(service.data_dir / "runs", prices=prices, fills=fills))
    request = pb.GetPortfolioStateRequest(backtest=name, time=ts(int(prices.times[-1])))
    replies = await asyncio.gather(*(service.stub.GetPortfolioState(request) for _ in range(8)))
    assert all(reply == replies[0] for reply in replies)
    assert replies[0].state.fill_count == len(fills)
    run_dir = service.data_dir / "runs" / name.split("/")[1]
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


async def test_open_result_files_stay_within_the_cache_bound(tmp_path: Path) -> None:
    data_dir = tmp_path / "bounded"
    data_dir.mkdir()
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 'b.db'}",
        data_dir,
        workers=0,
        playback_cache_bytes=600_000,
    ) as service:
        store = components(service.app).results
        assert store is not None
        names = []
        for seed in range(4):
            prices = random_prices(start_ns=T0, count=6_000, step_ns=10**10, seed=seed)
            names.append(
                await publish(service, write_run(data_dir / "runs", prices=prices, fills=[]))
            )
        for name in names * 2:
            messages = [
                m async for m in service.stub.StreamCandles(pb.StreamCandlesRequest(backtest=name))
            ]
            assert sum(len(m.chunk.times) for m in messages) == 1_000
            assert 0 < store.open_bytes <= 600_000


@given(
    sample_every=st.integers(2, 9),
    max_points=st.integers(3, 400),
)
@HYPOTHESIS
async def test_sampling_applies_before_lttb_which_keeps_the_sampled_ends(
    equity_run: tuple[Service, str, pd.DataFrame], sample_every: int, max_points: int
) -> None:
    service, name, curve = equity_run
    request = pb.StreamEquityRequest(
        backtest=name, sample_every=sample_every, max_points=max_points
    )
    points, _, _ = await _pages(service, request)
    sampled = list(zip(curve.time.tolist(), curve.equity.tolist(), strict=True))[::sample_every]
    assert len(points) == min(max_points, len(sampled))
    assert points[0] == sampled[0]
    assert points[-1] == sampled[-1]
    assert set(points) <= set(sampled)


def test_plain_equity_chunks_are_views_of_the_mapped_file(tmp_path: Path) -> None:
    # Server memory does not grow with the curve: without LTTB every chunk is a slice of the map.
    prices = random_prices(start_ns=T0, count=20_000, step_ns=10**10, seed=4)
    run = write_run(tmp_path, prices=prices, fills=[])
    build_sidecar(tmp_path / run.run_id)
    files = open_run(tmp_path / run.run_id)
    for every in (1, 3):
        selection = equity.select(
            files, start_ns=None, end_ns=None, sample_every=every, max_points=0
        )
        assert selection.picked is None
        for times, values, drawdowns in equity.blocks(
            files, selection, offset=0, count=len(selection), chunk_size=500
        ):
            assert np.shares_memory(times, files.equity_times)
            assert np.shares_memory(values, files.equity_values)
            assert np.shares_memory(drawdowns, files.equity_drawdowns)
    downsampled = equity.select(files, start_ns=None, end_ns=None, sample_every=1, max_points=100)
    assert downsampled.picked is not None
    assert downsampled.picked.size == 100
