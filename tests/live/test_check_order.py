"""CheckOrder, the pre-trade gate, against a WalletService speaking the real protocol over loopback.

The wallet service's GetWallet is being built in parallel; until it lands, a small in-test
WalletService servicer implementing only GetWallet stands in for it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from tapedeck.live.v1 import live_pb2
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tests.live.support import running_live

SERVICE_TOKEN = "live-to-wallets-token-0123456789"


@dataclass
class FakeWallets(wallets_pb2_grpc.WalletServiceServicer):
    """GetWallet over real gRPC; records what each call carried."""

    wallets: dict[str, wallets_pb2.Wallet] = field(default_factory=dict)
    delay: float = 0.0
    calls: list[dict[str, object]] = field(default_factory=list)

    async def GetWallet(self, request, context):
        self.calls.append(
            {
                "name": request.name,
                "time_remaining": context.time_remaining(),
                "authorization": dict(context.invocation_metadata()).get("authorization"),
            }
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        wallet = self.wallets.get(request.name)
        if wallet is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        return wallets_pb2.GetWalletResponse(wallet=wallet)

    def add(self, wallet_id: str, *balances: tuple[str, str, timedelta]) -> None:
        wallet = wallets_pb2.Wallet(name=f"wallets/{wallet_id}", display_name=wallet_id)
        now = datetime.now(UTC)
        for asset, available, age in balances:
            balance = wallet.balances.add(asset=asset, total=available, available=available)
            balance.update_time.FromDatetime(now - age)
        self.wallets[wallet.name] = wallet


@asynccontextmanager
async def fake_wallets() -> AsyncIterator[tuple[FakeWallets, str]]:
    servicer = FakeWallets()
    server = grpc.aio.server()
    wallets_pb2_grpc.add_WalletServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@asynccontextmanager
async def gate(database_url, data_dir, **settings) -> AsyncIterator[tuple[FakeWallets, object]]:
    async with (
        fake_wallets() as (wallets, address),
        running_live(
            database_url,
            data_dir,
            wallets_address=address,
            service_token=SERVICE_TOKEN,
            max_order_notional="50000",
            max_balance_age_seconds=60,
            **settings,
        ) as live,
    ):
        wallets.add("w1", ("USD", "10000", timedelta(0)), ("BTC", "0.5", timedelta(0)))
        wallets.add("stale", ("USD", "10000", timedelta(minutes=5)))
        yield wallets, live


def order(**fields) -> live_pb2.CheckOrderRequest:
    base = {
        "wallet": "wallets/w1",
        "symbol": "BTC-USD",
        "base_asset": "BTC",
        "quote_asset": "USD",
        "side": live_pb2.SIDE_BUY,
        "quantity": "0.1",
        "price": "60000",
        "run_id": "run-1",
        "client_order_id": "",
    }
    base.update(fields)
    return live_pb2.CheckOrderRequest(**base)


async def test_an_order_the_wallet_covers_is_allowed_and_records_nothing(database_url, data_dir):
    async with gate(database_url, data_dir) as (wallets, live):
        reply = await live.stub.CheckOrder(order())
        sell = await live.stub.CheckOrder(order(side=live_pb2.SIDE_SELL, quantity="0.5"))

        assert reply.allowed
        assert reply.reason == live_pb2.BLOCK_REASON_UNSPECIFIED
        assert (reply.available, reply.required) == ("10000", "6000.0")
        assert sell.allowed
        assert (sell.available, sell.required) == ("0.5", "0.5")
        blocks = await live.stub.ListBlocks(live_pb2.ListBlocksRequest())
        assert list(blocks.events) == []
        assert wallets.calls[0]["authorization"] == f"Bearer {SERVICE_TOKEN}"
        assert wallets.calls[0]["name"] == "wallets/w1"


@pytest.mark.parametrize(
    ("request_", "reason", "asks_wallet"),
    [
        (order(quantity="0.2"), live_pb2.BLOCK_REASON_INSUFFICIENT_FUNDS, True),
        (
            order(side=live_pb2.SIDE_SELL, quantity="0.6"),
            live_pb2.BLOCK_REASON_INSUFFICIENT_FUNDS,
            True,
        ),
        (order(quote_asset="EUR"), live_pb2.BLOCK_REASON_INSUFFICIENT_FUNDS, True),
        (order(quantity="1"), live_pb2.BLOCK_REASON_MAX_NOTIONAL, False),
        (order(wallet="wallets/stale"), live_pb2.BLOCK_REASON_STALE_BALANCE, True),
        (order(wallet="wallets/nobody"), live_pb2.BLOCK_REASON_UNKNOWN_WALLET, True),
    ],
)
async def test_a_refused_order_is_blocked_and_recorded_as_trade_blocked(
    database_url, data_dir, request_, reason, asks_wallet
):
    async with gate(database_url, data_dir) as (wallets, live):
        reply = await live.stub.CheckOrder(request_)

        assert not reply.allowed
        assert reply.reason == reason
        assert reply.message
        assert bool(wallets.calls) == asks_wallet
        blocks = await live.stub.ListBlocks(live_pb2.ListBlocksRequest())
        assert [e.event_id for e in blocks.events] == [reply.event.event_id]
        recorded = blocks.events[0]
        assert recorded == reply.event
        assert (
            recorded.reason
            == live_pb2.BlockReason.Name(reason).removeprefix("BLOCK_REASON_").lower()
        )
        assert (recorded.run_id, recorded.symbol) == ("run-1", "BTC-USD")
        assert recorded.payload["wallet"] == request_.wallet
        assert [(c.reason, c.count) for c in blocks.reason_counts] == [(recorded.reason, 1)]


async def test_a_retried_check_of_one_client_order_records_one_block(database_url, data_dir):
    async with gate(database_url, data_dir) as (_wallets, live):
        first = await live.stub.CheckOrder(order(quantity="0.2", client_order_id="O-1"))
        again = await live.stub.CheckOrder(order(quantity="0.2", client_order_id="O-1"))
        other = await live.stub.CheckOrder(order(quantity="0.2", client_order_id="O-2"))

        assert first.event == again.event
        assert other.event.event_id != first.event.event_id
        blocks = await live.stub.ListBlocks(live_pb2.ListBlocksRequest())
        assert len(blocks.events) == 2


async def test_the_callers_deadline_is_passed_to_the_wallet_service(database_url, data_dir):
    async with gate(database_url, data_dir, wallets_timeout_seconds=30) as (wallets, live):
        await live.stub.CheckOrder(order(), timeout=1.5)
        await live.stub.CheckOrder(order())

        with_deadline, without = (c["time_remaining"] for c in wallets.calls)
        # gRPC's timeout header is coarse (it rounds up), hence the 0.1 s of slack.
        assert 0 < with_deadline <= 1.6
        assert 1.6 < without <= 30.2  # our own cap applies when the caller sets none


async def test_a_caller_deadline_shorter_than_the_wallet_service_is_deadline_exceeded(
    database_url, data_dir
):
    async with gate(database_url, data_dir) as (wallets, live):
        wallets.delay = 2.0
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.CheckOrder(order(), timeout=0.3)

        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.5
        blocks = await live.stub.ListBlocks(live_pb2.ListBlocksRequest())
        assert list(blocks.events) == []


async def test_a_wallet_service_slower_than_our_cap_is_unavailable(database_url, data_dir):
    async with gate(database_url, data_dir, wallets_timeout_seconds=0.3) as (wallets, live):
        wallets.delay = 2.0
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.CheckOrder(order())

        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "0.3s" in caught.value.details()


async def test_the_wallet_service_down_is_unavailable_and_the_order_not_allowed(
    database_url, data_dir
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    async with running_live(database_url, data_dir, wallets_address=closed) as live:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.CheckOrder(order(), timeout=5)

        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "wallet service" in caught.value.details()
        blocks = await live.stub.ListBlocks(live_pb2.ListBlocksRequest())
        assert list(blocks.events) == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (order(wallet="w1"), "wallet"),
        (order(side=live_pb2.SIDE_UNSPECIFIED), "side"),
        (order(quantity="0"), "quantity"),
        (order(price="-1"), "price"),
        (order(price="abc"), "price"),
        (order(base_asset=""), "base_asset"),
        (order(quote_asset="BTC"), "quote_asset"),
    ],
)
async def test_a_malformed_order_is_invalid_argument(database_url, data_dir, request_, field):
    async with gate(database_url, data_dir) as (wallets, live):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.CheckOrder(request_)

        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(field)
        assert wallets.calls == []
