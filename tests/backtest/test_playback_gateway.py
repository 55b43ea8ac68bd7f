"""Playback through the real launcher and Envoy: gRPC-web (as a browser sends it) and native gRPC."""

from __future__ import annotations

import asyncio
import http.client
import struct
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.backtest.v1 import backtest_pb2_grpc
from tapedeck_backtest.runs.domain import RunState
from tests.backtest.playback_support import (
    T0,
    fill,
    insert_run,
    random_prices,
    write_run,
)
from tests.gateway.stack import Stack, start_stack

SERVICE = "/tapedeck.backtest.v1.BacktestService"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("playback-gateway"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def run_name(stack: Stack) -> str:
    """A synthetic finished run written into the stack's result store and database."""
    prices = random_prices(start_ns=T0, count=30_000, step_ns=4 * 10**9, seed=9)
    fills = [
        fill(
            int(prices.times[i]),
            "BUY" if i % 3 else "SELL",
            "0.2",
            f"{prices.prices[i]:.2f}",
            number=i,
        )
        for i in range(50, 29_000, 400)
    ]
    run = write_run(stack.data_dir / "runs", prices=prices, fills=fills)

    async def register() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{stack.data_dir / 'backtest.db'}")
        try:
            await insert_run(async_sessionmaker(engine), run.run_id, state=RunState.SUCCEEDED)
        finally:
            await engine.dispose()

    asyncio.run(register())
    return f"backtests/{run.run_id}"


def grpc_web(stack: Stack, method: str, message: bytes) -> tuple[int, dict[str, str], list[bytes]]:
    """POST one gRPC-web request over HTTP/1.1; return status, trailers and every message frame."""
    host, port = stack.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(
        "POST",
        f"{SERVICE}/{method}",
        body=b"\x00" + struct.pack(">I", len(message)) + message,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {stack.admin_token()}",
        },
    )
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    frames: list[bytes] = []
    trailers: dict[str, str] = {}
    offset = 0
    while offset < len(payload):
        flag = payload[offset]
        (length,) = struct.unpack(">I", payload[offset + 1 : offset + 5])
        body = payload[offset + 5 : offset + 5 + length]
        if flag & 0x80:
            for line in body.decode().strip().split("\r\n"):
                key, _, value = line.partition(":")
                trailers[key.strip().lower()] = value.strip()
        else:
            frames.append(body)
        offset += 5 + length
    for key in ("grpc-status", "grpc-message"):
        if key in response.headers:
            trailers.setdefault(key, response.headers[key])
    return response.status, trailers, frames


async def native(stack: Stack, request: pb.StreamCandlesRequest) -> list[pb.StreamCandlesResponse]:
    metadata = (("authorization", f"Bearer {stack.admin_token()}"),)
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = backtest_pb2_grpc.BacktestServiceStub(channel)
        return [m async for m in stub.StreamCandles(request, metadata=metadata)]


def test_candles_stream_as_many_grpc_web_frames_equal_to_native_grpc(
    stack: Stack, run_name: str
) -> None:
    request = pb.StreamCandlesRequest(
        backtest=run_name, indicators=[pb.INDICATOR_RSI_14, pb.INDICATOR_MACD], chunk_size=100
    )
    status, trailers, frames = grpc_web(stack, "StreamCandles", request.SerializeToString())
    assert status == 200
    assert trailers.get("grpc-status") == "0", trailers
    web = [pb.StreamCandlesResponse.FromString(frame) for frame in frames]
    assert len(web) == 20  # 2,000 one-minute candles in chunks of 100
    direct = asyncio.run(native(stack, request))
    assert web == direct
    assert len({m.content_version for m in web}) == 1


def test_equity_pages_and_portfolio_state_over_grpc_web(stack: Stack, run_name: str) -> None:
    points: list[int] = []
    token = ""
    pages = 0
    while True:
        request = pb.StreamEquityRequest(
            backtest=run_name, page_size=700, chunk_size=300, page_token=token
        )
        _status, trailers, frames = grpc_web(stack, "StreamEquity", request.SerializeToString())
        assert trailers.get("grpc-status") == "0", trailers
        messages = [pb.StreamEquityResponse.FromString(frame) for frame in frames]
        assert len(messages) == 3 or not messages[-1].next_page_token  # 300 + 300 + 100
        points.extend(t for m in messages for t in m.chunk.times)
        token = messages[-1].next_page_token
        pages += 1
        if not token:
            break
    assert pages > 1
    assert points == sorted(points)
    assert len(points) == messages[0].total_points

    state_request = pb.GetPortfolioStateRequest(backtest=run_name)
    state_request.time.FromNanoseconds(T0 + 60 * 60 * 10**9)
    _status, trailers, frames = grpc_web(
        stack, "GetPortfolioState", state_request.SerializeToString()
    )
    assert trailers.get("grpc-status") == "0", trailers
    (frame,) = frames
    reply = pb.GetPortfolioStateResponse.FromString(frame)
    assert reply.state.fill_count > 0
    assert reply.content_version


def test_a_bad_request_over_grpc_web_gets_its_status_in_the_trailers(
    stack: Stack, run_name: str
) -> None:
    request = pb.StreamEquityRequest(backtest=run_name, max_points=2)
    _, trailers, frames = grpc_web(stack, "StreamEquity", request.SerializeToString())
    assert trailers.get("grpc-status") == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
    assert frames == []
    missing = pb.StreamCandlesRequest(backtest="backtests/" + "0" * 32)
    _, trailers, _ = grpc_web(stack, "StreamCandles", missing.SerializeToString())
    assert trailers.get("grpc-status") == str(grpc.StatusCode.NOT_FOUND.value[0])


def test_the_stack_keeps_results_under_its_data_dir(stack: Stack, run_name: str) -> None:
    assert (stack.data_dir / "runs" / run_name.split("/")[1] / "manifest.json").exists()
    assert Path(stack.data_dir / "backtest.db").exists()
