"""Exchange access: one pooled client per exchange account, with a bound on calls in flight."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from decimal import Decimal

import certifi
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tapedeck_wallets.exchange.coinbase import CoinbaseClient, CoinbaseMarket
from tapedeck_wallets.exchange.credentials import CredentialsError, CredentialStore
from tapedeck_wallets.exchange.domain import (
    ErrorKind,
    ExchangeAccount,
    ExchangeBalance,
    ExchangeFailure,
)
from tapedeck_wallets.exchange.metrics import EXCHANGE_CALLS

logger = logging.getLogger(__name__)


@dataclass
class PoolStats:
    """Counters operators and tests read."""

    clients_created: int = 0
    fetches: int = 0


class ExchangeGateway:
    """Pools one client per exchange account and bounds concurrent exchange calls."""

    def __init__(
        self,
        *,
        credentials: CredentialStore,
        coinbase_api_url: str,
        timeout: float,
        price_timeout: float,
        concurrency: int,
    ) -> None:
        self._credentials = credentials
        self._coinbase_api_url = coinbase_api_url
        self._timeout = timeout
        self._price_timeout = price_timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._clients: dict[ExchangeAccount, CoinbaseClient] = {}
        self._market: CoinbaseMarket | None = None
        self._closed = False
        self._ssl_context: ssl.SSLContext | None = None
        self.stats = PoolStats()
        # ccxt logs each request's headers at DEBUG, signed bearer JWT included: keep that out of
        # the logs even when the service runs at DEBUG.
        ccxt_logger = logging.getLogger("ccxt")
        ccxt_logger.setLevel(max(ccxt_logger.getEffectiveLevel(), logging.INFO))

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=certifi.where())
        return self._ssl_context

    def _create(self, account: ExchangeAccount) -> CoinbaseClient:
        if account.exchange != "coinbase":
            raise ExchangeFailure(
                ErrorKind.BAD_RESPONSE, f"exchange {account.exchange!r} is not supported"
            )
        try:
            key = self._credentials.resolve(account.credentials_ref)
            load_pem_private_key(key.private_key.encode(), password=None)
        except CredentialsError as error:
            raise ExchangeFailure(ErrorKind.AUTHENTICATION, str(error)) from None
        except (ValueError, TypeError):
            raise ExchangeFailure(
                ErrorKind.AUTHENTICATION,
                f"credentials {account.credentials_ref!r} hold no usable EC private key",
            ) from None
        return CoinbaseClient(
            account=account,
            key_name=key.name,
            private_key=key.private_key,
            api_url=self._coinbase_api_url,
            timeout=self._timeout,
            ssl_context=self._context(),
        )

    async def client(self, account: ExchangeAccount) -> CoinbaseClient:
        """Return the account's client, creating it on first use."""
        existing = self._clients.get(account)
        if existing is None:
            # No await between the lookup and the insert: two callers cannot both create one.
            if self._closed:
                raise ExchangeFailure(ErrorKind.UNAVAILABLE, "the service is shutting down")
            existing = self._create(account)
            self._clients[account] = existing
            self.stats.clients_created += 1
        return existing

    async def fetch(self, account: ExchangeAccount) -> dict[str, ExchangeBalance]:
        """Fetch an account's balances, waiting for one of the bounded exchange slots."""
        async with self._slots:
            client = await self.client(account)
            self.stats.fetches += 1
            started = time.perf_counter()
            try:
                balances = await client.fetch_balances()
            except ExchangeFailure as failure:
                EXCHANGE_CALLS.labels(failure.kind.value).observe(time.perf_counter() - started)
                if (
                    failure.kind is ErrorKind.AUTHENTICATION
                    and self._clients.get(account) is client
                ):
                    # Drop the client so rotated credentials are read on the next attempt.
                    del self._clients[account]
                    await client.close()
                raise
            EXCHANGE_CALLS.labels("ok").observe(time.perf_counter() - started)
            return balances

    async def fetch_price(self, product_id: str) -> Decimal | None:
        """Fetch a product's price through the one public market client, in a bounded slot."""
        async with self._slots:
            if self._market is None:
                if self._closed:
                    raise ExchangeFailure(ErrorKind.UNAVAILABLE, "the service is shutting down")
                self._market = CoinbaseMarket(
                    api_url=self._coinbase_api_url,
                    timeout=self._price_timeout,
                    ssl_context=self._context(),
                )
            return await self._market.fetch_price(product_id)

    @property
    def client_count(self) -> int:
        """Return how many clients are open."""
        return len(self._clients)

    @property
    def clients(self) -> tuple[CoinbaseClient, ...]:
        """Return the open clients."""
        return tuple(self._clients.values())

    async def close(self) -> None:
        """Close every client concurrently."""
        self._closed = True
        clients: list[CoinbaseClient | CoinbaseMarket] = list(self._clients.values())
        self._clients = {}
        if self._market is not None:
            clients.append(self._market)
            self._market = None
        results = await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("closing an exchange client failed: %s", type(result).__name__)
