"""Build and run the live service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.database import is_postgres, listen_dsn, session_factory
from tapedeck_common.listener import PostgresListener
from tapedeck_common.paging import PageTokens
from tapedeck_common.runtime import Components, ServiceApp, start_service
from tapedeck_common.server import GrpcService, Registration
from tapedeck_common.settings import secret_value
from tapedeck_live.domain import GateLimits
from tapedeck_live.gate import Gate
from tapedeck_live.notifier import LISTENER_APPLICATION, Notifier
from tapedeck_live.repository import NOTIFY_CHANNEL
from tapedeck_live.servicer import LiveServicer
from tapedeck_live.session_summarizer import SessionSummarizer
from tapedeck_live.settings import LiveSettings
from tapedeck_live.tail import Fanout
from tapedeck_live.wallets_client import WalletDirectory

SERVICE = "live"
MIGRATIONS = Path(__file__).parent / "migrations"
LIVE_SERVICE = GrpcService.of(live_pb2, live_pb2_grpc, "LiveService")


async def start(settings: LiveSettings) -> ServiceApp:
    """Migrate the database and start serving."""

    async def build(engine: AsyncEngine) -> Components:
        sessions = session_factory(engine)
        # Reads need no transaction: each statement sees committed data, which is all they need.
        reads = session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
        notifier = Notifier()
        on_stop: list[Callable[[], Awaitable[None]]] = []
        if is_postgres(engine):
            listener = PostgresListener(
                dsn=listen_dsn(engine),
                channel=NOTIFY_CHANNEL,
                application=LISTENER_APPLICATION,
                wake=notifier.wake,
                retry_seconds=settings.listener_retry_seconds,
            )
            listener.start()
            on_stop.append(listener.stop)
        fanout = Fanout(
            sessions=reads,
            notifier=notifier,
            batch_size=settings.subscribe_batch_size,
            window_events=settings.tail_window_events,
            retry_seconds=settings.listener_retry_seconds,
        )
        fanout.start()
        on_stop.append(fanout.stop)
        wallets = WalletDirectory(
            address=settings.wallets_address,
            service_token=secret_value(settings.service_token),
            max_timeout=settings.wallets_timeout_seconds,
        )
        on_stop.append(wallets.close)
        gate = Gate(
            wallets=wallets,
            sessions=sessions,
            notifier=notifier,
            limits=GateLimits(
                max_notional=settings.max_order_notional,
                max_balance_age=timedelta(seconds=settings.max_balance_age_seconds),
            ),
        )
        servicer = LiveServicer(
            sessions,
            reads=reads,
            notifier=notifier,
            fanout=fanout,
            gate=gate,
            page_tokens=PageTokens.for_deployment(settings),
            subscribe_batch_size=settings.subscribe_batch_size,
            heartbeat_seconds=settings.heartbeat_seconds,
            # Half the pool at most, so appends and lists always find a connection.
            subscriber_reads=max(1, settings.db_pool_size // 2),
            encoded_events=settings.encoded_events,
        )
        # Runs after the server stopped and before the engine is disposed.
        on_stop.append(servicer.close)
        summarizer = SessionSummarizer(sessions, notifier=notifier)
        summarizer.start()
        on_stop.append(summarizer.stop)
        return Components(
            [Registration(LIVE_SERVICE, servicer)],
            on_stop=on_stop,
            probes=fanout.probes(),
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)
