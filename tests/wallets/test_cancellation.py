"""Callers who give up mid-write leave no transaction behind."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck.wallets.v1 import wallets_pb2
from tests.support import eventually


async def test_writes_abandoned_by_their_deadline_do_not_wedge_the_database(service, database_url):
    async with service() as svc:
        wallet = await svc.create_wallet("desk", balances={"BTC": ("1", "0")})
        wallet_id = wallet.name.split("/")[1]
        pool = svc.app.engine.pool
        # Another client holds the wallet's row (and on SQLite the write lock), so every write
        # below is still inside its transaction, waiting, when its deadline passes.
        blocker = create_async_engine(database_url)
        try:
            async with blocker.connect() as holder:
                transaction = await holder.begin()
                await holder.execute(
                    text("UPDATE wallets SET display_name = display_name WHERE id = :id"),
                    {"id": wallet_id},
                )
                for attempt in range(3):
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await svc.stub.SetBalances(
                            wallets_pb2.SetBalancesRequest(
                                name=wallet.name,
                                balances=[wallets_pb2.Balance(asset="BTC", available=str(attempt))],
                            ),
                            timeout=0.3,
                        )
                    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                await transaction.rollback()
        finally:
            await blocker.dispose()

        async def no_transaction_left() -> bool:
            return pool.checkedout() == 0  # type: ignore[attr-defined, no-any-return]

        await eventually(no_transaction_left, message="the abandoned writes' connections returned")
        # None of the abandoned writes landed: each was cancelled before it could commit.
        kept = (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=wallet.name))).wallet
        assert [(b.asset, b.available) for b in kept.balances] == [("BTC", "1")]
        after = await svc.stub.SetBalances(
            wallets_pb2.SetBalancesRequest(
                name=wallet.name, balances=[wallets_pb2.Balance(asset="BTC", available="42")]
            ),
            timeout=10,
        )
    assert after.wallet.balances[0].available == "42"
