"""The wallet application: each operation is one transaction over the wallet repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_wallets.exchange.prices import PriceBook
from tapedeck_wallets.wallets import repository
from tapedeck_wallets.wallets.domain import Balance, ListedWallet, NewWallet, Wallet
from tapedeck_wallets.wallets.repository import WalletPosition
from tapedeck_wallets.wallets.totals import BalanceTotals, products_to_price, value_totals


def _now() -> datetime:
    return datetime.now(UTC)


class Wallets:
    """Creates, reads, lists and deletes wallets, sets their balances and values their totals."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, prices: PriceBook) -> None:
        self._sessions = sessions
        self._prices = prices

    async def create(self, wallet: NewWallet) -> Wallet:
        """Store a new wallet with its balances; a taken display name is ALREADY_EXISTS."""
        async with self._sessions.begin() as session:
            return await repository.create_wallet(session=session, wallet=wallet, now=_now())

    async def get(self, wallet_id: str) -> Wallet:
        """Return one wallet with its balances."""
        async with self._sessions() as session:
            return await repository.get_wallet(session=session, wallet_id=wallet_id)

    async def page(
        self, *, exchange: str | None, after: WalletPosition | None, limit: int
    ) -> tuple[list[ListedWallet], bool]:
        """Return a page of wallets by display name and whether more follow."""
        async with self._sessions() as session:
            return await repository.list_wallets(
                session=session, exchange=exchange, after=after, limit=limit
            )

    async def delete(self, wallet_id: str) -> None:
        """Delete a wallet and its balances."""
        async with self._sessions.begin() as session:
            await repository.delete_wallet(session=session, wallet_id=wallet_id)

    async def set_balances(
        self, wallet_id: str, balances: Sequence[Balance], *, replace: bool
    ) -> Wallet:
        """Upsert a wallet's balances, removing the assets not listed when `replace`."""
        async with self._sessions.begin() as session:
            return await repository.set_balances(
                session=session, wallet_id=wallet_id, balances=balances, replace=replace, now=_now()
            )

    async def balance_totals(self, quote: str) -> BalanceTotals:
        """Sum every wallet's balances per asset and value them at the exchange's prices."""
        async with self._sessions() as session:
            totals = await repository.balance_totals(session=session)
        quotes = await self._prices.quotes(products_to_price(totals, quote))
        return value_totals(totals, quote=quote, quotes=quotes)
