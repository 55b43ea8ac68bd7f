"""Every List RPC refuses a page token it did not issue for the request: INVALID_ARGUMENT naming
`page_token`, never INTERNAL.

The RPCs come from the contract (every method whose request has `page_token`), so a new List RPC
is checked without a change here. The three services run in process as one deployment (one
tokens file, so one page-token key); the tokens sent are what a caller could have in hand:
- foreign: a real token the deployment issued for another RPC (ListEvents, or ListBlocks for
  ListEvents itself);
- forged: that token with its position rewritten and its signature kept;
- truncated: that token cut short.
A request's fields are checked before anything is looked up, so a well-formed name of a run that
does not exist still gets its token refused (INVALID_ARGUMENT, not NOT_FOUND).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_backtest import server as backtest_server
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_common.runtime import ServiceApp
from tapedeck_live import server as live_server
from tapedeck_live.settings import LiveSettings
from tapedeck_wallets import server as wallets_server
from tapedeck_wallets.settings import WalletsSettings
from tests.live.support import block, event
from tests.support import field_violations

ADMIN_TOKEN = "admin-token-0123456789"
METADATA = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
# A well-formed name of a run that does not exist: the token must be refused before any lookup.
# Required fields of some List requests, so that only the page token is wrong.
RESOURCE_FIELDS = {
    "backtest": "backtests/0123456789abcdef0123456789abcdef",
    "run_id": "TRADER-001:0c6f6a52-5b5e-4c61-9c55-0d7e9d2b1c11",
}


@dataclass(frozen=True)
class Service:
    """One service of the contract and how to start it in process."""

    descriptor: ServiceDescriptor
    stub: Callable[[grpc.aio.Channel], Any]
    start: Callable[[Path, Path], Awaitable[ServiceApp]]


def _common(data_dir: Path, tokens: Path, name: str) -> dict[str, Any]:
    return {
        "port": 0,
        "data_dir": data_dir,
        "database_url": f"sqlite+aiosqlite:///{data_dir / f'{name}.db'}",
        "tokens_file": tokens,
        "shutdown_grace_seconds": 0.2,
    }


SERVICES = {
    "backtest": Service(
        backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"],
        backtest_pb2_grpc.BacktestServiceStub,
        lambda data, tokens: backtest_server.start(
            BacktestSettings(**_common(data, tokens, "backtest"), workers=0, live_address="")
        ),
    ),
    "wallets": Service(
        wallets_pb2.DESCRIPTOR.services_by_name["WalletService"],
        wallets_pb2_grpc.WalletServiceStub,
        lambda data, tokens: wallets_server.start(
            WalletsSettings(**_common(data, tokens, "wallets"), redis_url=None, live_address="")
        ),
    ),
    "live": Service(
        live_pb2.DESCRIPTOR.services_by_name["LiveService"],
        live_pb2_grpc.LiveServiceStub,
        lambda data, tokens: live_server.start(LiveSettings(**_common(data, tokens, "live"))),
    ),
}


def _list_rpcs() -> list[Any]:
    params = []
    for name, service in SERVICES.items():
        for method in service.descriptor.methods:
            if "page_token" not in method.input_type.fields_by_name:
                continue
            rpc = f"{service.descriptor.name}.{method.name}"
            params.append(pytest.param(name, method, id=rpc))
    return params


LIST_RPCS = _list_rpcs()
CASES = ("foreign", "forged", "truncated")


def test_the_contract_has_the_list_rpcs_this_test_expects() -> None:
    # A guard on the discovery itself: if it found nothing, every check below would pass.
    found = {param.id for param in LIST_RPCS}
    assert {"LiveService.ListEvents", "WalletService.ListWallets"} <= found
    assert "BacktestService.ListBacktests" in found
    assert len(found) >= 10


@asynccontextmanager
async def deployment(tmp_path: Path, *names: str) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """Start the named services with one tokens file; yield a channel to each."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({"tokens": [{"name": "admin", "role": "admin", "token": ADMIN_TOKEN}]})
    )
    async with AsyncExitStack() as stack:
        channels = {}
        for name in names:
            app = await SERVICES[name].start(tmp_path, tokens)
            stack.push_async_callback(app.stop)
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
            stack.push_async_callback(channel.close)
            channels[name] = channel
        yield channels


async def issued_token(live: grpc.aio.Channel, *, method: str) -> str:
    """Return a next_page_token the deployment issued for ListEvents or ListBlocks."""
    stub = live_pb2_grpc.LiveServiceStub(live)
    events = [
        event("filled-1"),
        event("filled-2"),
        block("block-1", reason="max_notional"),
        block("block-2", reason="max_notional"),
    ]
    await stub.AppendEvents(live_pb2.AppendEventsRequest(events=events), metadata=METADATA)
    if method == "ListEvents":
        reply = await stub.ListEvents(live_pb2.ListEventsRequest(page_size=1), metadata=METADATA)
    else:
        reply = await stub.ListBlocks(live_pb2.ListBlocksRequest(page_size=1), metadata=METADATA)
    assert reply.next_page_token
    return str(reply.next_page_token)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def bad_token(case: str, issued: str) -> str:
    """Return the token a caller sends in each case, made from one the deployment issued."""
    if case == "foreign":
        return issued
    if case == "truncated":
        return issued[:-4]
    body, _, signature = issued.partition(".")
    document = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    document["p"] = [1] * len(document["p"])
    forged = _b64(json.dumps(document, separators=(",", ":")).encode())
    assert forged != body
    return f"{forged}.{signature}"


def request_with_token(method: MethodDescriptor, token: str) -> Any:
    """Return a request of the method with only its page token wrong."""
    request = message_factory.GetMessageClass(method.input_type)()
    for field, value in RESOURCE_FIELDS.items():
        if field in method.input_type.fields_by_name:
            setattr(request, field, value)
    request.page_size = 1
    request.page_token = token
    return request


async def call(stub: Any, method: MethodDescriptor, request: Any) -> None:
    """Call a unary or server-streaming RPC and read its whole answer."""
    rpc = getattr(stub, method.name)
    if method.server_streaming:
        async for _ in rpc(request, metadata=METADATA):
            pass
    else:
        await rpc(request, metadata=METADATA)


@pytest.mark.parametrize(("service", "method"), LIST_RPCS)
async def test_a_token_the_service_did_not_issue_for_the_request_is_invalid_argument(
    tmp_path: Path, service: str, method: MethodDescriptor
) -> None:
    async with deployment(tmp_path, *dict.fromkeys(("live", service))) as channels:
        other = "ListBlocks" if method.name == "ListEvents" else "ListEvents"
        issued = await issued_token(channels["live"], method=other)
        stub = SERVICES[service].stub(channels[service])
        answers = {}
        for case in CASES:
            try:
                await call(stub, method, request_with_token(method, bad_token(case, issued)))
            except grpc.aio.AioRpcError as error:
                named = (
                    "page_token" in field_violations(error)
                    if error.code() == grpc.StatusCode.INVALID_ARGUMENT
                    else False
                )
                answers[case] = (error.code().name, named)
            else:
                answers[case] = ("OK", False)
    assert answers == dict.fromkeys(CASES, ("INVALID_ARGUMENT", True))
