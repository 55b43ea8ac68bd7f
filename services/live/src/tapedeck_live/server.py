"""Build and run the live service."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.database import session_factory
from tapedeck_common.runtime import (
    Components,
    ServiceApp,
    serve_until_signal,
    start_service,
)
from tapedeck_common.server import Registration
from tapedeck_live.servicer import LiveServicer
from tapedeck_live.settings import LiveSettings

SERVICE = "live"
SERVICE_NAME = live_pb2.DESCRIPTOR.services_by_name["LiveService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"


async def start(settings: LiveSettings) -> ServiceApp:
    """Migrate the database and start serving."""

    async def build(engine: AsyncEngine) -> Components:
        servicer = LiveServicer(session_factory(engine))
        return Components(
            registrations=[
                Registration(live_pb2_grpc.add_LiveServiceServicer_to_server, servicer, SERVICE_NAME)
            ]
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)


async def serve(settings: LiveSettings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    await serve_until_signal(await start(settings))
