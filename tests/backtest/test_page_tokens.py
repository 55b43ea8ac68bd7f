"""Every paged RPC of the backtest service refuses a page token it did not issue for the request.

ListDatasets, ListStrategies, ListBacktests, ListImportableFiles, ListSweeps, ListWalkForwards,
StreamEquity and ListFills each get a real token (page_size 1), then, in turn: the token forged (position
rewritten, signature kept), truncated, issued for another RPC, issued for the same RPC with
another filter, issued by another deployment (another key), and an unsigned token of the old
format with an empty position (which made ListBacktests answer INTERNAL). Each answer must be INVALID_ARGUMENT naming `page_token`;
the real token must give the next page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tapedeck_backtest.runs.domain import RunState
from tests.backtest.playback_support import (
    MINUTE,
    T0,
    fill,
    insert_run,
    random_prices,
    sessions_of,
    write_run,
)
from tests.backtest.runs_support import Service, running_service, spec
from tests.support import field_violations


@dataclass(frozen=True)
class Paged:
    """One paged RPC: how to call it with a request, and the request for its first page."""

    name: str
    call: Callable[[Message], Awaitable[tuple[int, str]]]  # -> (items, next token)
    request: Callable[[], Any]
    other_filter: Callable[[], Any] | None  # the same RPC filtered otherwise, if it filters


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def forged(token: str) -> str:
    body, _, signature = token.partition(".")
    document = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    document["p"] = [
        value + 1 if isinstance(value, int) else value + "0" for value in document["p"]
    ]
    return f"{_b64(json.dumps(document, separators=(',', ':')).encode())}.{signature}"


def old_format(query: str) -> str:
    # What the service issued before tokens were signed: base64 JSON, no signature.
    fingerprint = hashlib.sha256(query.encode()).hexdigest()[:16]
    return _b64(json.dumps({"q": fingerprint, "p": {}}).encode())


async def unary(rpc: Any, request: Message, items: str) -> tuple[int, str]:
    reply = await rpc(request)
    return len(getattr(reply, items)), str(reply.next_page_token)


async def equity_stream(stub: Any, request: Message) -> tuple[int, str]:
    points, token = 0, ""
    async for message in stub.StreamEquity(request):
        points += len(message.chunk.times)
        token = message.next_page_token or token
    return points, token


def paged_rpcs(service: Service, run: str) -> list[Paged]:
    stub = service.stub
    return [
        Paged(
            "ListDatasets",
            lambda r: unary(stub.ListDatasets, r, "datasets"),
            lambda: pb.ListDatasetsRequest(page_size=1),
            lambda: pb.ListDatasetsRequest(page_size=1, instrument_id="BTCUSDT.BINANCE"),
        ),
        Paged(
            "ListStrategies",
            lambda r: unary(stub.ListStrategies, r, "strategies"),
            lambda: pb.ListStrategiesRequest(page_size=1),
            None,
        ),
        Paged(
            "ListBacktests",
            lambda r: unary(stub.ListBacktests, r, "backtests"),
            lambda: pb.ListBacktestsRequest(page_size=1),
            lambda: pb.ListBacktestsRequest(page_size=1, states=[pb.BACKTEST_STATE_QUEUED]),
        ),
        Paged(
            "ListImportableFiles",
            lambda r: unary(stub.ListImportableFiles, r, "files"),
            lambda: pb.ListImportableFilesRequest(page_size=1),
            None,
        ),
        Paged(
            "ListSweeps",
            lambda r: unary(stub.ListSweeps, r, "sweeps"),
            lambda: pb.ListSweepsRequest(page_size=1),
            None,
        ),
        Paged(
            "ListWalkForwards",
            lambda r: unary(stub.ListWalkForwards, r, "walk_forwards"),
            lambda: pb.ListWalkForwardsRequest(page_size=1),
            None,
        ),
        Paged(
            "StreamEquity",
            lambda r: equity_stream(stub, r),
            lambda: pb.StreamEquityRequest(backtest=run, page_size=1),
            lambda: pb.StreamEquityRequest(backtest=run, page_size=1, sample_every=2),
        ),
        Paged(
            "ListFills",
            lambda r: unary(stub.ListFills, r, "fills"),
            lambda: pb.ListFillsRequest(backtest=run, page_size=1),
            lambda: pb.ListFillsRequest(
                backtest=run,
                page_size=1,
                time_range=common_pb2.TimeRange(
                    end_time=Timestamp(seconds=(T0 + 5 * MINUTE) // 10**9)
                ),
            ),
        ),
    ]


async def two_of_everything(service: Service) -> str:
    """Import two datasets, queue two runs, two sweeps and two walk-forwards, publish a finished
    run; return it."""
    dataset = await service.import_trades("a.parquet", rows=300)
    await service.import_trades("b.parquet", rows=300, seed=8)
    for slow in (16, 17):
        request = spec(dataset)
        request.parameters["slow_period"].int_value = slow
        await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
        await service.stub.CreateSweep(
            pb.CreateSweepRequest(
                base_spec=request,
                axes=[
                    pb.ParameterAxis(name="fast_period", values=[pb.ParameterValue(int_value=3)])
                ],
            )
        )
        await service.stub.CreateWalkForward(
            pb.CreateWalkForwardRequest(
                base_spec=request,
                axes=[
                    pb.ParameterAxis(name="fast_period", values=[pb.ParameterValue(int_value=3)])
                ],
                walk_forward=pb.WalkForwardSpec(
                    folds=1,
                    in_sample_duration=Duration(seconds=300),
                    out_of_sample_duration=Duration(seconds=300),
                ),
            )
        )
    prices = random_prices(start_ns=T0, count=600, step_ns=10**10, seed=3)
    fills = [
        fill(T0 + i * MINUTE, "BUY" if i % 2 == 0 else "SELL", "0.1", "30000", number=i)
        for i in range(1, 9)
    ]
    written = write_run(service.data_dir / "runs", prices=prices, fills=fills)
    await insert_run(sessions_of(service.app), written.run_id, state=RunState.SUCCEEDED)
    return f"backtests/{written.run_id}"


async def answer(paged: Paged, request: Message) -> tuple[str, bool]:
    try:
        await paged.call(request)
    except grpc.aio.AioRpcError as error:
        named = error.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in (
            field_violations(error)
        )
        return error.code().name, named
    return "OK", False


def with_token(request: Any, token: str) -> Any:
    request.page_token = token
    return request


async def test_every_paged_rpc_refuses_tokens_it_did_not_issue_for_the_request(
    database_url: str, data_dir: Path, tmp_path: Path
):
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    async with (
        running_service(database_url, data_dir, workers=0) as service,
        running_service(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}", other_dir, workers=0) as other,
    ):
        run = await two_of_everything(service)
        rpcs = paged_rpcs(service, run)
        issued = {}
        for paged in rpcs:
            count, token = await paged.call(paged.request())
            assert count == 1, paged.name
            assert token, paged.name
            following, _ = await paged.call(with_token(paged.request(), token))
            assert following == 1, paged.name  # the real token gives the next page
            issued[paged.name] = token
        # The same request on another deployment: a real token signed with another key.
        _, elsewhere = await unary(
            other.stub.ListStrategies, pb.ListStrategiesRequest(page_size=1), "strategies"
        )
        assert elsewhere

        answers: dict[tuple[str, str], tuple[str, bool]] = {}
        for index, paged in enumerate(rpcs):
            token = issued[paged.name]
            cases = {
                "forged": forged(token),
                "truncated": token[:-3],
                "another RPC": issued[rpcs[index - 1].name],
                "another deployment": elsewhere,
                "old format": old_format(f"{paged.name}:"),
            }
            if paged.other_filter is not None:
                _, cases["another filter"] = await paged.call(paged.other_filter())
                assert cases["another filter"], paged.name
            for case, bad in cases.items():
                answers[paged.name, case] = await answer(paged, with_token(paged.request(), bad))
    assert answers == dict.fromkeys(answers, ("INVALID_ARGUMENT", True))
    assert len(answers) == 4 * 6 + 4 * 5
