"""Callers who give up mid-write leave no transaction behind."""

from __future__ import annotations

import time

import grpc

from tapedeck.wallets.v1 import wallets_pb2


async def test_writes_abandoned_by_their_deadline_do_not_wedge_the_database(service):
    async with service() as svc:
        wallet = await svc.create_wallet("desk", balances={"BTC": ("1", "0")})
        codes = set()
        for i in range(30):
            try:
                await svc.stub.SetBalances(
                    wallets_pb2.SetBalancesRequest(
                        name=wallet.name,
                        balances=[wallets_pb2.Balance(asset="BTC", available=str(i))],
                    ),
                    timeout=0.002 * (i % 5 + 1),
                )
            except grpc.aio.AioRpcError as error:
                codes.add(error.code())
        begun = time.monotonic()
        after = await svc.stub.SetBalances(
            wallets_pb2.SetBalancesRequest(
                name=wallet.name, balances=[wallets_pb2.Balance(asset="BTC", available="42")]
            ),
            timeout=10,
        )
        elapsed = time.monotonic() - begun
    assert codes <= {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert after.wallet.balances[0].available == "42"
    assert elapsed < 5
