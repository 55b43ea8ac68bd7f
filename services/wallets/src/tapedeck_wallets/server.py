"""Build and run the wallets service."""

from __future__ import annotations

from pathlib import Path

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_common.database import session_factory
from tapedeck_common.entrypoint import StartupError
from tapedeck_common.outbox_drainers import secret_value, start_drainer, stop_drainer
from tapedeck_common.paging import PageTokens
from tapedeck_common.runtime import (
    Components,
    ServiceApp,
    serve_until_signal,
    start_service,
)
from tapedeck_common.server import Registration
from tapedeck_wallets.exchange.cache import BalanceCache, MemoryStore, RedisStore, SnapshotStore
from tapedeck_wallets.exchange.credentials import CredentialStore
from tapedeck_wallets.exchange.gateway import ExchangeGateway
from tapedeck_wallets.models import live_outbox
from tapedeck_wallets.reconciliations.service import Reconciler
from tapedeck_wallets.reconciliations.servicer import ReconciliationRpcs
from tapedeck_wallets.servicer import WalletServicer
from tapedeck_wallets.settings import WalletsSettings
from tapedeck_wallets.wallets.service import Wallets
from tapedeck_wallets.wallets.servicer import WalletRpcs

SERVICE = "wallets"
SERVICE_NAME = wallets_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"


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
            concurrency=settings.exchange_concurrency,
        )
        cache = BalanceCache(
            await _snapshot_store(settings), ttl=settings.balance_cache_ttl_seconds
        )
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
            wallets=WalletRpcs(Wallets(sessions), page_tokens=page_tokens),
            reconciliations=ReconciliationRpcs(reconciler, page_tokens=page_tokens),
        )
        live_events = start_drainer(
            sessions=sessions,
            table=live_outbox,
            address=settings.live_address,
            service_token=secret_value(settings.service_token),
            retry_max_seconds=settings.live_retry_max_seconds,
        )
        return Components(
            registrations=[
                Registration(
                    wallets_pb2_grpc.add_WalletServiceServicer_to_server, servicer, SERVICE_NAME
                )
            ],
            # Closed in reverse: jobs stop first, then the cache, then the exchange clients,
            # then the events' drainer (stopping jobs may still publish).
            on_stop=[
                lambda: stop_drainer(live_events),
                gateway.close,
                cache.close,
                reconciler.stop,
            ],
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)


async def serve(settings: WalletsSettings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    await serve_until_signal(await start(settings))
