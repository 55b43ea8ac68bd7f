"""A running wallet service and its emulated exchange, as the tests drive them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_common.runtime import ServiceApp
from tapedeck_dev.emulator import CoinbaseEmulator
from tapedeck_wallets import server
from tapedeck_wallets.reconciliations.service import Reconciler
from tapedeck_wallets.servicer import WalletServicer
from tapedeck_wallets.settings import WalletsSettings
from tests.support import eventually


@dataclass
class Exchange:
    """The emulator and the secrets file holding the keys of its portfolios."""

    emulator: CoinbaseEmulator
    secrets_file: Path

    def portfolio(
        self, balances: dict[str, tuple[str, str]], *, ref: str | None = None
    ) -> tuple[str, str]:
        """Create a portfolio, store its key under a credentials ref; return (portfolio, ref)."""
        pid, key = self.emulator.add_portfolio(balances)
        ref = ref or f"KEY_{pid.replace('-', '_').upper()}"
        secrets = json.loads(self.secrets_file.read_text())
        secrets[ref] = key.as_secret()
        self.secrets_file.write_text(json.dumps(secrets))
        return pid, ref


@dataclass
class Service:
    """A started wallet service with a stub on a real channel."""

    app: ServiceApp
    stub: wallets_pb2_grpc.WalletServiceStub
    exchange: Exchange

    @property
    def reconciler(self) -> Reconciler:
        """The service's reconciler, as its server built it."""
        servicer = self.app.components.registrations[0].servicer
        assert isinstance(servicer, WalletServicer)
        return servicer.reconciliations.reconciler

    async def create_wallet(
        self,
        display_name: str,
        *,
        balances: dict[str, tuple[str, str]] | None = None,
        exchange_balances: dict[str, tuple[str, str]] | None = None,
        portfolio: tuple[str, str] | None = None,
    ) -> wallets_pb2.Wallet:
        """Create a wallet (stored balances as {asset: (available, hold)}) on its own portfolio."""
        pid, ref = portfolio or self.exchange.portfolio(exchange_balances or {})
        reply = await self.stub.CreateWallet(
            wallets_pb2.CreateWalletRequest(
                wallet=wallets_pb2.Wallet(
                    display_name=display_name,
                    exchange="coinbase",
                    account_ref=pid,
                    credentials_ref=ref,
                    balances=[
                        wallets_pb2.Balance(asset=a, available=free, hold=held)
                        for a, (free, held) in (balances or {}).items()
                    ],
                )
            )
        )
        return reply.wallet

    async def reconcile(
        self,
        wallets: list[str] | None = None,
        *,
        threshold: str = "",
        max_cache_age: float | None = None,
        adopt: bool = False,
    ) -> wallets_pb2.Reconciliation:
        """Start a reconciliation and return it as the RPC answered."""
        request = wallets_pb2.ReconcileWalletsRequest(
            wallets=wallets or [], threshold=threshold, adopt_exchange_balances=adopt
        )
        if max_cache_age is not None:
            request.max_cache_age.CopyFrom(
                Duration(nanos=int(max_cache_age * 1e9) % 1_000_000_000, seconds=int(max_cache_age))
            )
        return (await self.stub.ReconcileWallets(request)).reconciliation

    async def finished(self, name: str, *, within: float = 20.0) -> wallets_pb2.Reconciliation:
        """Wait until a reconciliation is no longer QUEUED or RUNNING; return it."""

        async def done() -> wallets_pb2.Reconciliation | None:
            report = (
                await self.stub.GetReconciliation(wallets_pb2.GetReconciliationRequest(name=name))
            ).reconciliation
            finished = (
                wallets_pb2.RECONCILIATION_STATE_SUCCEEDED,
                wallets_pb2.RECONCILIATION_STATE_FAILED,
            )
            return report if report.state in finished else None

        return await eventually(done, timeout=within, message=f"{name} finished")


@asynccontextmanager
async def running_service(
    *, database_url: str, data_dir: Path, exchange: Exchange, **overrides: Any
) -> AsyncIterator[Service]:
    """Start the service on port 0 against the emulator; stop it afterwards."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "port": 0,
        "data_dir": data_dir,
        "coinbase_api_url": exchange.emulator.base_url,
        "secrets_file": exchange.secrets_file,
        "exchange_timeout_seconds": 5.0,
        "redis_url": None,
        "shutdown_grace_seconds": 0.5,
        "live_address": "",  # events go to a live service only when the test names one
    }
    values.update(overrides)
    app = await server.start(WalletsSettings(**values))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Service(
                app=app, stub=wallets_pb2_grpc.WalletServiceStub(channel), exchange=exchange
            )
    finally:
        await app.stop()
