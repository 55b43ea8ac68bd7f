"""CheckOrder, the pre-trade gate, against the real wallet service started in process.

A wallet service that answers slowly cannot be made from the real one, so the deadline tests use
a small in-test WalletService servicer implementing GetWallet: a fake speaking the real protocol.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from tapedeck.live.v1 import live_pb2
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_wallets import server as wallets_server
from tapedeck_wallets.settings import WalletsSettings
from tests.live.support import running_live
from tests.support import eventually, free_port

SERVICE_TOKEN = "live-to-wallets-token-0123456789"


@dataclass
class FakeWallets(wallets_pb2_grpc.WalletServiceServicer):
    """GetWallet over real gRPC; records what each call carried."""

    wallets: dict[str, wallets_pb2.Wallet] = field(default_factory=dict)
    delay: float = 0.0
    unavailable_first: int = 0
    calls: list[dict[str, object]] = field(default_factory=list)

    async def GetWallet(self, request, context):
        self.calls.append(
            {
                "name": request.name,
                "time_remaining": context.time_remaining(),
                "authorization": dict(context.invocation_metadata()).get("authorization"),
            }
        )
        if len(self.calls) <= self.unavailable_first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        if self.delay:
            await asyncio.sleep(self.delay)
        wallet = self.wallets.get(request.name)
        if wallet is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        return wallets_pb2.GetWalletResponse(wallet=wallet)


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


ADMIN_TOKEN = "admin-token-for-live-gate-tests-0123"
OPERATOR_TOKEN = "operator-token-for-live-gate-tests-01"


def tokens_file(directory: Path) -> Path:
    path = directory / "tokens.json"
    entries = [
        {"name": "admin", "role": "admin", "token": ADMIN_TOKEN},
        {"name": "trader", "role": "operator", "token": OPERATOR_TOKEN},
        {"name": "live-service", "role": "viewer", "token": SERVICE_TOKEN},
    ]
    path.write_text(json.dumps({"tokens": entries}))
    return path


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Gate:
    """The live service and the real wallet service, both with authentication on."""

    live: object
    wallets: wallets_pb2_grpc.WalletServiceStub

    async def check(
        self, request: live_pb2.CheckOrderRequest, **kwargs
    ) -> live_pb2.CheckOrderResponse:
        return await self.live.stub.CheckOrder(request, metadata=bearer(OPERATOR_TOKEN), **kwargs)

    async def blocks(self) -> live_pb2.ListBlocksResponse:
        return await self.live.stub.ListBlocks(
            live_pb2.ListBlocksRequest(), metadata=bearer(OPERATOR_TOKEN)
        )

    async def wallet(self, display_name: str, *balances: tuple[str, str]) -> str:
        created = await self.wallets.CreateWallet(
            wallets_pb2.CreateWalletRequest(
                wallet=wallets_pb2.Wallet(
                    display_name=display_name,
                    exchange="coinbase",
                    account_ref=f"acct-{display_name}",
                    credentials_ref="COINBASE_TEST_KEY",
                )
            ),
            metadata=bearer(ADMIN_TOKEN),
        )
        await self.wallets.SetBalances(
            wallets_pb2.SetBalancesRequest(
                name=created.wallet.name,
                balances=[
                    wallets_pb2.Balance(asset=asset, total=amount, available=amount, hold="0")
                    for asset, amount in balances
                ],
            ),
            metadata=bearer(ADMIN_TOKEN),
        )
        return created.wallet.name


@asynccontextmanager
async def gate(
    database_url: str, data_dir: Path, *, service_token: str = SERVICE_TOKEN, **settings
) -> AsyncIterator[Gate]:
    tokens = tokens_file(data_dir)
    wallets_app = await wallets_server.start(
        WalletsSettings(
            database_url=database_url,
            port=0,
            data_dir=data_dir / "wallets",
            tokens_file=tokens,
            live_address="",  # no reconciliations here, so no events
            shutdown_grace_seconds=0.2,
        )
    )
    try:
        async with (
            running_live(
                database_url,
                data_dir,
                tokens_file=tokens,
                wallets_address=f"127.0.0.1:{wallets_app.port}",
                service_token=service_token,
                **{"max_order_notional": "50000", "max_balance_age_seconds": 60, **settings},
            ) as live,
            grpc.aio.insecure_channel(f"127.0.0.1:{wallets_app.port}") as channel,
        ):
            yield Gate(live=live, wallets=wallets_pb2_grpc.WalletServiceStub(channel))
    finally:
        await wallets_app.stop()


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
    async with gate(database_url, data_dir) as g:
        wallet = await g.wallet("desk", ("USD", "10000"), ("BTC", "0.5"))
        buy = await g.check(order(wallet=wallet))
        sell = await g.check(order(wallet=wallet, side=live_pb2.SIDE_SELL, quantity="0.5"))

        assert buy.allowed
        assert buy.reason == live_pb2.BLOCK_REASON_UNSPECIFIED
        assert (buy.available, buy.required) == ("10000", "6000.0")
        assert sell.allowed
        assert (sell.available, sell.required) == ("0.5", "0.5")
        assert list((await g.blocks()).events) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"quantity": "0.2"}, live_pb2.BLOCK_REASON_INSUFFICIENT_FUNDS),
        ({"side": live_pb2.SIDE_SELL, "quantity": "0.6"}, live_pb2.BLOCK_REASON_INSUFFICIENT_FUNDS),
        ({"quote_asset": "EUR"}, live_pb2.BLOCK_REASON_INSUFFICIENT_FUNDS),
        ({"quantity": "1"}, live_pb2.BLOCK_REASON_MAX_NOTIONAL),
        ({"wallet": "wallets/nobody"}, live_pb2.BLOCK_REASON_UNKNOWN_WALLET),
    ],
)
async def test_a_refused_order_is_blocked_and_recorded_as_trade_blocked(
    database_url, data_dir, changes, reason
):
    async with gate(database_url, data_dir) as g:
        wallet = await g.wallet("desk", ("USD", "10000"), ("BTC", "0.5"))
        request = order(**{"wallet": wallet, **changes})
        reply = await g.check(request)

        assert not reply.allowed
        assert reply.reason == reason
        assert reply.message
        blocks = await g.blocks()
        assert [e.event_id for e in blocks.events] == [reply.event.event_id]
        recorded = blocks.events[0]
        assert recorded == reply.event
        spelled = live_pb2.BlockReason.Name(reason).removeprefix("BLOCK_REASON_").lower()
        assert recorded.reason == spelled
        assert (recorded.run_id, recorded.symbol) == ("run-1", "BTC-USD")
        assert recorded.payload["wallet"] == request.wallet
        assert [(c.reason, c.count) for c in blocks.reason_counts] == [(spelled, 1)]


async def test_a_balance_older_than_the_limit_blocks_as_stale(database_url, data_dir):
    # A fresh balance passes with the default limit (the tests above); here the limit is so short
    # that the balance is stale by the time it is asked for, however fast the machine is.
    async with gate(database_url, data_dir, max_balance_age_seconds=0.001) as g:
        wallet = await g.wallet("desk", ("USD", "10000"))

        async def stale() -> live_pb2.CheckOrderResponse:
            reply = await g.check(order(wallet=wallet))
            return reply if not reply.allowed else None

        reply = await eventually(stale, message="balance turned stale")
        assert reply.reason == live_pb2.BLOCK_REASON_STALE_BALANCE
        assert [e.reason for e in (await g.blocks()).events] == ["stale_balance"]


async def test_a_retried_check_of_one_client_order_records_one_block(database_url, data_dir):
    async with gate(database_url, data_dir) as g:
        wallet = await g.wallet("desk", ("USD", "100"))
        first = await g.check(order(wallet=wallet, client_order_id="O-1"))
        again = await g.check(order(wallet=wallet, client_order_id="O-1"))
        other = await g.check(order(wallet=wallet, client_order_id="O-2"))

        assert first.event == again.event
        assert other.event.event_id != first.event.event_id
        assert len((await g.blocks()).events) == 2


async def test_a_service_token_the_wallet_service_refuses_is_unavailable(database_url, data_dir):
    async with gate(database_url, data_dir, service_token="not-a-token-anyone-issued") as g:
        wallet = await g.wallet("desk", ("USD", "10000"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await g.check(order(wallet=wallet))

        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "UNAUTHENTICATED" in caught.value.details()


@asynccontextmanager
async def slow_gate(
    database_url, data_dir, **settings
) -> AsyncIterator[tuple[FakeWallets, object]]:
    async with (
        fake_wallets() as (wallets, address),
        running_live(database_url, data_dir, wallets_address=address, **settings) as live,
    ):
        wallets.wallets["wallets/w1"] = wallets_pb2.Wallet(name="wallets/w1")
        yield wallets, live


async def test_the_callers_deadline_is_passed_to_the_wallet_service(database_url, data_dir):
    async with slow_gate(database_url, data_dir, wallets_timeout_seconds=30) as (wallets, live):
        await live.stub.CheckOrder(order(), timeout=1.5)
        await live.stub.CheckOrder(order())

        with_deadline, without = (c["time_remaining"] for c in wallets.calls)
        # gRPC's timeout header is coarse (it rounds up), hence the 0.1 s of slack.
        assert 0 < with_deadline <= 1.6
        assert 1.6 < without <= 30.2  # our own cap applies when the caller sets none


async def test_a_caller_deadline_shorter_than_the_wallet_service_is_deadline_exceeded(
    database_url, data_dir
):
    async with slow_gate(database_url, data_dir) as (wallets, live):
        wallets.delay = 2.0
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.CheckOrder(order(), timeout=0.3)

        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.5
        blocks = await live.stub.ListBlocks(live_pb2.ListBlocksRequest())
        assert list(blocks.events) == []


async def test_a_wallet_service_slower_than_our_cap_is_unavailable(database_url, data_dir):
    async with slow_gate(database_url, data_dir, wallets_timeout_seconds=0.3) as (wallets, live):
        wallets.delay = 2.0
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.CheckOrder(order())

        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "0.3s" in caught.value.details()


async def test_a_wallet_service_briefly_unavailable_is_retried_by_the_channel(
    database_url, data_dir
):
    async with slow_gate(database_url, data_dir) as (wallets, live):
        wallets.unavailable_first = 2
        reply = await live.stub.CheckOrder(order(), timeout=10)

        assert reply is not None
        assert len(wallets.calls) == 3


async def test_the_wallet_service_down_is_unavailable_and_the_order_not_allowed(
    database_url, data_dir
):
    closed = f"127.0.0.1:{free_port()}"
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
    async with slow_gate(database_url, data_dir) as (wallets, live):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.CheckOrder(request_)

        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(field)
        assert wallets.calls == []
