"""WalletService: each RPC is answered by the part that owns its resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc

from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_wallets.reconciliations.servicer import ReconciliationRpcs
from tapedeck_wallets.wallets.servicer import WalletRpcs

Context = grpc.aio.ServicerContext[Any, Any]


class WalletServicer(wallets_pb2_grpc.WalletServiceServicer):
    """The wallet service's RPCs: wallets and balances, and their reconciliations."""

    def __init__(self, *, wallets: WalletRpcs, reconciliations: ReconciliationRpcs) -> None:
        self.wallets = wallets
        self.reconciliations = reconciliations

    async def CreateWallet(
        self, request: wallets_pb2.CreateWalletRequest, context: Context
    ) -> wallets_pb2.CreateWalletResponse:
        """Create a wallet with optional balances."""
        return await self.wallets.CreateWallet(request, context)

    async def GetWallet(
        self, request: wallets_pb2.GetWalletRequest, context: Context
    ) -> wallets_pb2.GetWalletResponse:
        """Return one wallet."""
        return await self.wallets.GetWallet(request, context)

    async def ListWallets(
        self, request: wallets_pb2.ListWalletsRequest, context: Context
    ) -> wallets_pb2.ListWalletsResponse:
        """Return a page of wallets with balances."""
        return await self.wallets.ListWallets(request, context)

    async def DeleteWallet(
        self, request: wallets_pb2.DeleteWalletRequest, context: Context
    ) -> wallets_pb2.DeleteWalletResponse:
        """Delete a wallet and its balances."""
        return await self.wallets.DeleteWallet(request, context)

    async def SetBalances(
        self, request: wallets_pb2.SetBalancesRequest, context: Context
    ) -> wallets_pb2.SetBalancesResponse:
        """Upsert a wallet's stored balances."""
        return await self.wallets.SetBalances(request, context)

    async def ReconcileWallets(
        self, request: wallets_pb2.ReconcileWalletsRequest, context: Context
    ) -> wallets_pb2.ReconcileWalletsResponse:
        """Start a reconciliation and return it at once."""
        return await self.reconciliations.ReconcileWallets(request, context)

    async def GetReconciliation(
        self, request: wallets_pb2.GetReconciliationRequest, context: Context
    ) -> wallets_pb2.GetReconciliationResponse:
        """Return one report with its results."""
        return await self.reconciliations.GetReconciliation(request, context)

    async def ListReconciliations(
        self, request: wallets_pb2.ListReconciliationsRequest, context: Context
    ) -> wallets_pb2.ListReconciliationsResponse:
        """Return a page of reports, newest first."""
        return await self.reconciliations.ListReconciliations(request, context)

    async def WatchReconciliation(
        self, request: wallets_pb2.WatchReconciliationRequest, context: Context
    ) -> AsyncIterator[wallets_pb2.WatchReconciliationResponse]:
        """Stream a reconciliation's results, then the finished report."""
        # Closed with this stream, so the part's clean-up (its watcher) runs when a call ends.
        async with aclosing(self.reconciliations.WatchReconciliation(request, context)) as updates:
            async for update in updates:
                yield update

    async def GetBalanceTotals(
        self, request: wallets_pb2.GetBalanceTotalsRequest, context: Context
    ) -> wallets_pb2.GetBalanceTotalsResponse:
        """Return every asset's total over all wallets, valued in one quote currency."""
        return await self.wallets.GetBalanceTotals(request, context)
