"""ListWallets loads a page and its balances in exactly two SQL statements, whatever its size."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_wallets.models import BalanceRow, WalletRow
from tests.support import counted_statements

ASSETS = ("BTC", "ETH", "SOL", "USD", "USDC")


async def seed_wallets(engine: AsyncEngine, count: int) -> None:
    """Insert `count` wallets with five balances each, in bulk."""
    now = datetime.now(UTC)
    wallets = [
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
    ]
    balances = [
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
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(WalletRow), wallets)
        await connection.execute(insert(BalanceRow), balances)


@pytest.mark.parametrize("page_size", [1, 20, 1000])
async def test_list_wallets_issues_two_statements_for_any_page_size(service, page_size):
    async with service() as svc:
        await seed_wallets(svc.app.engine, 1001)
        # Warm the pool so connection set-up is not counted as the page's work.
        await svc.stub.ListWallets(wallets_pb2.ListWalletsRequest(page_size=1))
        with counted_statements(svc.app.engine) as statements:
            page = await svc.stub.ListWallets(wallets_pb2.ListWalletsRequest(page_size=page_size))
        with counted_statements(svc.app.engine) as next_statements:
            second = await svc.stub.ListWallets(
                wallets_pb2.ListWalletsRequest(page_size=page_size, page_token=page.next_page_token)
            )
    assert len(statements) == 2, statements
    assert len(next_statements) == 2, next_statements
    assert len(page.wallets) == page_size
    assert all(len(w.balances) == len(ASSETS) for w in page.wallets)
    assert page.wallets[0].balances[0].total == "10.123456789012345678"
    assert second.wallets[0].display_name > page.wallets[-1].display_name
