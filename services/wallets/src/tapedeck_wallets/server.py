"""Build and run the wallets service."""

from __future__ import annotations

from pathlib import Path

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_common.database import session_factory
from tapedeck_common.entrypoint import StartupError
from tapedeck_common.paging import PageTokens
from tapedeck_common.runtime import Components, ServiceApp, start_service
from tapedeck_common.server import GrpcService, Registration
from tapedeck_live_client.events import start_live_events
from tapedeck_wallets.exchange.cache import BalanceCache, MemoryStore, RedisStore, SnapshotStore
from tapedeck_wallets.exchange.credentials import CredentialStore
from tapedeck_wallets.exchange.gateway import ExchangeGateway
from tapedeck_wallets.exchange.prices import PriceBook
from tapedeck_wallets.models import live_outbox
from tapedeck_wallets.reconciliations.service import Reconciler
from tapedeck_wallets.reconciliations.servicer import ReconciliationRpcs
from tapedeck_wallets.servicer import WalletServicer
from tapedeck_wallets.settings import WalletsSettings
from tapedeck_wallets.wallets.service import Wallets
from tapedeck_wallets.wallets.servicer import WalletRpcs

SERVICE = "wallets"
MIGRATIONS = Path(__file__).parent / "migrations"
WALLET_SERVICE = GrpcService.of(wallets_pb2, wallets_pb2_grpc, "WalletService")


async def _snapshot_store(settings: WalletsSettings) -> SnapshotStore:
    if settings.redis_url is None:
        return MemoryStore(ttl=settings.balance_cache_ttl_seconds)
    try:
        return await RedisStore.connect(
            settings.redis_url,
            prefix=settings.redis_key_prefix,
            ttl=settings.balance_cache_ttl_seconds,
            # Long enough for one fetch; a crashed holder's lock lapses after it.
            lock_seconds=settings.exchange_timeout_seconds + 5,
        )
    except (RedisError, OSError) as error:
        raise StartupError(f"Redis at WALLETS_REDIS_URL/REDIS_URL is not usable: {error}") from None


async def start(settings: WalletsSettings) -> ServiceApp:
    """Migrate the database and start serving."""

    async def build(engine: AsyncEngine) -> Components:
        sessions = session_factory(engine)
        gateway = ExchangeGateway(
            credentials=CredentialStore(settings.secrets_file),
            coinbase_api_url=settings.coinbase_api_url,
            timeout=settings.exchange_timeout_seconds,
            price_timeout=settings.price_timeout_seconds,
            concurrency=settings.exchange_concurrency,
        )
        cache = BalanceCache(
            await _snapshot_store(settings), ttl=settings.balance_cache_ttl_seconds
        )
        prices = PriceBook(gateway.fetch_price, ttl=settings.price_cache_ttl_seconds)
        reconciler = Reconciler(
            sessions=sessions,
            cache=cache,
            gateway=gateway,
            lease_seconds=settings.reconciliation_lease_seconds,
        )
        try:
            await reconciler.start()
        except BaseException:
            await cache.close()
            raise
        page_tokens = PageTokens.for_deployment(settings)
        servicer = WalletServicer(
            wallets=WalletRpcs(Wallets(sessions, prices=prices), page_tokens=page_tokens),
            reconciliations=ReconciliationRpcs(reconciler, page_tokens=page_tokens),
        )
        live_events = start_live_events(settings, sessions=sessions, table=live_outbox)
        return Components(
            [Registration(WALLET_SERVICE, servicer)],
            # Closed in reverse: jobs stop first, then the caches, then the exchange clients,
            # then the events' drainer (stopping jobs may still publish).
            on_stop=[
                live_events.stop,
                gateway.close,
                prices.close,
                cache.close,
                reconciler.stop,
            ],
            health_reporters=[live_events.report_to],
            probes=live_events.probes(),
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)
