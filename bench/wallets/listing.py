"""ListWallets: Tapedeck's two-statement page vs the old one-query-per-wallet list."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import grpc
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.wallets.process import wallets_process
from bench.wallets.timing import ms, percentile
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_common.database import create_engine, session_factory
from tapedeck_common.entrypoint import freeze_startup_heap
from tapedeck_wallets.amounts import decimal_text
from tapedeck_wallets.models import BalanceRow, WalletRow
from tapedeck_wallets.settings import WalletsSettings
from tapedeck_wallets.timestamps import epoch_micros
from tapedeck_wallets.wallets import repository
from tapedeck_wallets.wallets.domain import Balance, ListedWallet, Wallet
from tests.support import counted_statements

ASSETS = ("BTC", "ETH", "SOL", "USD", "USDC")


async def seed(engine: AsyncEngine, count: int) -> None:
    """Insert `count` wallets with five balances each."""
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(
            insert(WalletRow),
            [
                {
                    "id": f"w{i:05d}",
                    "display_name": f"desk-{i:05d}",
                    "exchange": "coinbase",
                    "account_ref": f"portfolio-{i}",
                    "credentials_ref": "KEY",
                    "create_time": now,
                    "update_time": now,
                }
                for i in range(count)
            ],
        )
        await connection.execute(
            insert(BalanceRow),
            [
                {
                    "wallet_id": f"w{i:05d}",
                    "asset": asset,
                    "total": Decimal("10.123456789012345678"),
                    "available": Decimal("10.123456789012345678"),
                    "hold": Decimal(0),
                    "update_time": now,
                }
                for i in range(count)
                for asset in ASSETS
            ],
        )


async def naive_list(engine: AsyncEngine, count: int) -> list[Wallet]:
    """The replaced endpoint: one query for the wallets, then one per wallet for its balances."""
    async with engine.connect() as connection:
        wallets = (
            await connection.execute(
                select(WalletRow.__table__).order_by(WalletRow.display_name).limit(count)
            )
        ).all()
        listed = []
        for w in wallets:
            balances = (
                await connection.execute(
                    select(BalanceRow.__table__)
                    .where(BalanceRow.wallet_id == w.id)
                    .order_by(BalanceRow.asset)
                )
            ).all()
            listed.append(
                Wallet(
                    id=w.id,
                    display_name=w.display_name,
                    exchange=w.exchange,
                    account_ref=w.account_ref,
                    credentials_ref=w.credentials_ref,
                    balances=tuple(
                        Balance(
                            asset=b.asset,
                            available=b.available,
                            hold=b.hold,
                            update_time=b.update_time,
                        )
                        for b in balances
                    ),
                    create_time=w.create_time,
                    update_time=w.update_time,
                )
            )
        return listed


def listed(wallets: list[Wallet]) -> list[ListedWallet]:
    """Return wallets as a page lists them (amounts as decimal text), to compare both ways."""
    return [
        ListedWallet(
            id=w.id,
            display_name=w.display_name,
            exchange=w.exchange,
            account_ref=w.account_ref,
            credentials_ref=w.credentials_ref,
            balances=tuple(
                (
                    b.asset,
                    decimal_text(b.total),
                    decimal_text(b.available),
                    decimal_text(b.hold),
                    epoch_micros(b.update_time),
                )
                for b in w.balances
                if b.update_time is not None
            ),
            create_micros=epoch_micros(w.create_time),
            update_micros=epoch_micros(w.update_time),
        )
        for w in wallets
    ]


async def tapedeck_list(engine: AsyncEngine, count: int) -> list[ListedWallet]:
    """Tapedeck's repository call for one page, as the servicer makes it."""
    async with session_factory(engine)() as session:
        wallets, _ = await repository.list_wallets(
            session=session, exchange=None, after=None, limit=count
        )
        return wallets


def _row(label: str, sql: list[str], samples: list[float]) -> str:
    return (
        f"{label} {len(sql):5d} stmts p50 {ms(percentile(samples, 50))}"
        f" p99 {ms(percentile(samples, 99))}"
    )


async def run_listing(database_url: str, data_dir: Path, sizes: list[int], label: str) -> None:
    """Print statements and p50/p99 for each page size, both ways, and the ratio.

    The data layer is timed in this process, both ways, on one engine; the RPC against the
    service in its own process, as deployed.
    """
    async with wallets_process(database_url=database_url, data_dir=data_dir) as (port, _):
        engine = create_engine(
            WalletsSettings(database_url=database_url, data_dir=data_dir), service="wallets"
        )
        try:
            await seed(engine, max(sizes))
            # As the service does once serving: full collections skip the libraries' objects,
            # so p99 is the code's, not this process's import heap's.
            freeze_startup_heap()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = wallets_pb2_grpc.WalletServiceStub(channel)
                for size in sizes:
                    await _measure(stub, engine, size, label)
        finally:
            await engine.dispose()


async def _measure(
    stub: wallets_pb2_grpc.WalletServiceStub, engine: AsyncEngine, size: int, label: str
) -> None:
    rounds = 200 if size <= 20 else 100
    rpc: list[float] = []
    ours: list[float] = []
    naive: list[float] = []
    await stub.ListWallets(wallets_pb2.ListWalletsRequest(page_size=size))
    await naive_list(engine, size)
    for _ in range(rounds):
        begun = time.perf_counter()
        page = await stub.ListWallets(wallets_pb2.ListWalletsRequest(page_size=size))
        rpc.append(time.perf_counter() - begun)
        with counted_statements(engine) as our_sql:
            begun = time.perf_counter()
            mine = await tapedeck_list(engine, size)
            ours.append(time.perf_counter() - begun)
        with counted_statements(engine) as naive_sql:
            begun = time.perf_counter()
            theirs = await naive_list(engine, size)
            naive.append(time.perf_counter() - begun)
    assert len(page.wallets) == size
    assert mine == listed(theirs)
    print(
        f"  {label:10} {size:5d} wallets | data layer: "
        + _row("tapedeck", our_sql, ours)
        + " | "
        + _row("naive", naive_sql, naive)
        + f" | x{percentile(naive, 50) / percentile(ours, 50):.1f}"
        + f" | tapedeck RPC p50 {ms(percentile(rpc, 50))}"
        + f" p99 {ms(percentile(rpc, 99))}"
    )
