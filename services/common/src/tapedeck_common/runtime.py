"""The service lifecycle every service shares: tokens, migrated database, server, shutdown."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from grpc_health.v1 import health
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck_common.auth import TokenError, TokenStore
from tapedeck_common.database import create_engine, database_url
from tapedeck_common.database_health import DatabaseHealth
from tapedeck_common.entrypoint import StartupError
from tapedeck_common.metrics import MetricsServer, Probe, Sample, Sampler, serve_metrics
from tapedeck_common.migrations import upgrade_to_head
from tapedeck_common.server import Registration, RunningServer, start_server
from tapedeck_common.settings import ServiceSettings

logger = logging.getLogger(__name__)


def load_tokens(settings: ServiceSettings) -> TokenStore | None:
    """Return the token store, or None (auth off) only in development without a tokens file."""
    if settings.tokens_file is None:
        if settings.environment != "development":
            raise StartupError("TAPEDECK_TOKENS_FILE is required outside development")
        logger.warning("no TAPEDECK_TOKENS_FILE: authentication is off (development only)")
        return None
    try:
        return TokenStore.from_file(settings.tokens_file)
    except TokenError as error:
        raise StartupError(str(error)) from None


async def open_database(
    settings: ServiceSettings, *, service: str, migrations: Path
) -> AsyncEngine:
    """Create the engine and migrate it to head; unreachable or broken databases stop start-up."""
    url = database_url(settings, service=service)
    engine = create_engine(settings, service=service)
    try:
        await upgrade_to_head(engine, script_location=migrations, service=service)
    except (OSError, SQLAlchemyError) as error:
        await engine.dispose()
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise StartupError(
            f"database {url.render_as_string(hide_password=True)} is not usable: {reason}"
        ) from None
    logger.info("database ready", extra={"database": url.render_as_string(hide_password=True)})
    return engine


@dataclass
class Components:
    """What a service plugs into the runtime: its servicers and what to close on the way out."""

    registrations: list[Registration]
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    """The service's domain gauges, sampled in the background while metrics are served."""
    # Given the server's health servicer once it serves, to report statuses of their own.
    health_reporters: list[Callable[[health.aio.HealthServicer], Awaitable[None]]] = field(
        default_factory=list
    )


@dataclass
class ServiceApp:
    """A running service: its database and server."""

    settings: ServiceSettings
    engine: AsyncEngine
    server: RunningServer
    components: Components
    database_health: DatabaseHealth | None = None
    metrics: MetricsServer | None = None
    sampler: Sampler | None = None

    @property
    def port(self) -> int:
        """Return the port the server listens on."""
        return self.server.port

    async def stop(self) -> None:
        """Report NOT_SERVING, drain calls for the grace period, stop workers, release the database."""
        await self.server.stop(self.settings.shutdown_grace_seconds)
        if self.database_health is not None:
            await self.database_health.stop()
        if self.sampler is not None:
            await self.sampler.stop()
        if self.metrics is not None:
            self.metrics.stop()
        for close in reversed(self.components.on_stop):
            try:
                await close()
            except Exception:
                logger.exception("error while stopping")
        await self.engine.dispose()


async def start_service(
    settings: ServiceSettings,
    *,
    service: str,
    migrations: Path,
    build: Callable[[AsyncEngine], Awaitable[Components]],
) -> ServiceApp:
    """Load tokens, migrate the database, build the components and start serving."""
    tokens = load_tokens(settings)
    engine = await open_database(settings, service=service, migrations=migrations)
    try:
        components = await build(engine)
        server = await start_server(
            host=settings.host,
            port=settings.port,
            registrations=components.registrations,
            tokens=tokens,
            access_log=settings.access_log,
        )
        for report_to in components.health_reporters:
            await report_to(server.health)
    except BaseException:
        await engine.dispose()
        raise
    app = ServiceApp(settings=settings, engine=engine, server=server, components=components)
    app.database_health = DatabaseHealth(
        engine,
        servicer=server.health,
        names=(*server.service_names, ""),
        service=service,
        interval=settings.db_check_seconds,
        stall=settings.db_stall_seconds,
    ).start()
    try:
        app.metrics = serve_metrics(host=settings.metrics_host, port=settings.metrics_port)
    except BaseException:
        await app.stop()
        raise
    if app.metrics is not None:
        probes = [pool_probe(engine), *components.probes]
        app.sampler = Sampler(probes, interval=settings.metrics_sample_seconds).start()
    return app


def pool_probe(engine: AsyncEngine) -> Probe:
    """Return the probe of the connections the engine's pool has handed out."""

    async def read() -> list[Sample]:
        checked_out = getattr(engine.pool, "checkedout", None)
        return [] if checked_out is None else [((), float(checked_out()))]

    return Probe(
        "tapedeck_db_pool_connections_in_use",
        "Database connections checked out of the pool now.",
        (),
        read,
    )
