"""The wallet RPCs of WalletService: requests to the wallet application, wallets to protos."""

from __future__ import annotations

from typing import Any

import grpc

from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_common.paging import PageTokens
from tapedeck_wallets.wallets import messages
from tapedeck_wallets.wallets.service import Wallets
from tapedeck_wallets.wallets.totals import quote_currency

Context = grpc.aio.ServicerContext[Any, Any]


class WalletRpcs:
    """CreateWallet, GetWallet, ListWallets, DeleteWallet, SetBalances and GetBalanceTotals."""

    def __init__(self, wallets: Wallets, *, page_tokens: PageTokens) -> None:
        self._wallets = wallets
        self._page_tokens = page_tokens

    async def CreateWallet(
        self, request: wallets_pb2.CreateWalletRequest, context: Context
    ) -> wallets_pb2.CreateWalletResponse:
        """Create a wallet with optional balances."""
        created = await self._wallets.create(messages.new_wallet(request.wallet, field="wallet"))
        response = wallets_pb2.CreateWalletResponse()
        messages.fill_wallet(response.wallet, created)
        return response

    async def GetWallet(
        self, request: wallets_pb2.GetWalletRequest, context: Context
    ) -> wallets_pb2.GetWalletResponse:
        """Return one wallet."""
        wallet = await self._wallets.get(messages.wallet_id(request.name))
        response = wallets_pb2.GetWalletResponse()
        messages.fill_wallet(response.wallet, wallet)
        return response

    async def ListWallets(
        self, request: wallets_pb2.ListWalletsRequest, context: Context
    ) -> wallets_pb2.ListWalletsResponse:
        """Return a page of wallets with balances, in two SQL statements."""
        page = self._page_tokens.page(
            request, query=f"ListWallets:exchange={request.exchange}", keys=(str, str)
        )
        wallets, more = await self._wallets.page(
            exchange=request.exchange or None,
            after=None if page.after is None else (str(page.after[0]), str(page.after[1])),
            limit=page.size,
        )
        response = wallets_pb2.ListWalletsResponse()
        if more:
            response.next_page_token = page.token_after((wallets[-1].display_name, wallets[-1].id))
        add = response.wallets.add
        for wallet in wallets:
            messages.fill_listed_wallet(add(), wallet)
        return response

    async def DeleteWallet(
        self, request: wallets_pb2.DeleteWalletRequest, context: Context
    ) -> wallets_pb2.DeleteWalletResponse:
        """Delete a wallet and its balances."""
        await self._wallets.delete(messages.wallet_id(request.name))
        return wallets_pb2.DeleteWalletResponse()

    async def SetBalances(
        self, request: wallets_pb2.SetBalancesRequest, context: Context
    ) -> wallets_pb2.SetBalancesResponse:
        """Upsert a wallet's stored balances."""
        wallet = await self._wallets.set_balances(
            messages.wallet_id(request.name),
            messages.balances(request.balances, field="balances"),
            replace=request.replace,
        )
        response = wallets_pb2.SetBalancesResponse()
        messages.fill_wallet(response.wallet, wallet)
        return response

    async def GetBalanceTotals(
        self, request: wallets_pb2.GetBalanceTotalsRequest, context: Context
    ) -> wallets_pb2.GetBalanceTotalsResponse:
        """Return every asset's total over all wallets, valued in the quote currency."""
        totals = await self._wallets.balance_totals(
            quote_currency(request.quote_currency, field="quote_currency")
        )
        response = wallets_pb2.GetBalanceTotalsResponse()
        messages.fill_balance_totals(response, totals)
        return response
