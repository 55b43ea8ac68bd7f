"""Database faults under calls: terminated PostgreSQL connections are UNAVAILABLE, then recover."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import asyncpg
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy.engine import make_url

from tapedeck.wallets.v1 import wallets_pb2
from tests.support import POSTGRES_ADMIN_DSN, eventually, postgres_database
from tests.wallets.harness import Exchange, Service, running_service


async def _terminate_backends(database: str) -> int:
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    return len(rows)


async def test_terminated_connections_answer_unavailable_with_retry_info_then_recover(
    tmp_path: Path, exchange: Exchange
) -> None:
    async with postgres_database() as url:
        database = make_url(url).database
        assert database is not None
        async with running_service(
            database_url=url, data_dir=tmp_path / "data", exchange=exchange, db_pool_size=4
        ) as service:
            wallet = await service.create_wallet("faults")
            codes: list[grpc.StatusCode] = []
            retry_infos: list[bool] = []

            async def hammer() -> None:
                for _ in range(40):
                    try:
                        await service.stub.GetWallet(
                            wallets_pb2.GetWalletRequest(name=wallet.name), timeout=20
                        )
                        codes.append(grpc.StatusCode.OK)
                    except grpc.aio.AioRpcError as error:
                        codes.append(error.code())
                        status = rpc_status.from_call(error)
                        retry_infos.append(
                            status is not None
                            and any(
                                d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details
                            )
                        )

            async def terminate() -> None:
                for _ in range(5):
                    await asyncio.sleep(0.05)
                    await _terminate_backends(database)

            await asyncio.gather(*(hammer() for _ in range(6)), terminate())

            assert grpc.StatusCode.INTERNAL not in codes
            assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
            assert all(retry_infos)

            async def serves() -> bool:
                got = await service.stub.GetWallet(
                    wallets_pb2.GetWalletRequest(name=wallet.name), timeout=5
                )
                return got.wallet.name == wallet.name

            await eventually(serves, timeout=10, message="GetWallet serves again")


async def test_concurrent_replacing_writes_to_one_wallet_all_succeed_one_after_another(
    service: Callable[..., AbstractAsyncContextManager[Service]],
) -> None:
    async with service() as svc:
        wallet = await svc.create_wallet("races", balances={"BTC": ("1", "0")})

        async def replace(index: int) -> wallets_pb2.SetBalancesResponse:
            return await svc.stub.SetBalances(
                wallets_pb2.SetBalancesRequest(
                    name=wallet.name,
                    balances=[
                        wallets_pb2.Balance(asset="ETH", available=str(index)),
                        wallets_pb2.Balance(asset=f"X{index}", available="1"),
                    ],
                    replace=True,
                ),
                timeout=30,
            )

        replies = await asyncio.gather(*(replace(i) for i in range(10)))
        assert len(replies) == 10
        final = (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=wallet.name))).wallet
        # The last writer's balances, whole: no mix of two replacements.
        assets = sorted(b.asset for b in final.balances)
        index = int(next(b.available for b in final.balances if b.asset == "ETH"))
        assert assets == sorted(["ETH", f"X{index}"])
