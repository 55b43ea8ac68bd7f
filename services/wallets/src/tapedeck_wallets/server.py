"""Build and run the wallets service."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_common.database import session_factory
from tapedeck_common.runtime import (
    Components,
    ServiceApp,
    serve_until_signal,
    start_service,
)
from tapedeck_common.server import Registration
from tapedeck_wallets.servicer import WalletServicer
from tapedeck_wallets.settings import WalletsSettings

SERVICE = "wallets"
SERVICE_NAME = wallets_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"


async def start(settings: WalletsSettings) -> ServiceApp:
    """Migrate the database and start serving."""

    async def build(engine: AsyncEngine) -> Components:
        servicer = WalletServicer(session_factory(engine))
        return Components(
            registrations=[
                Registration(wallets_pb2_grpc.add_WalletServiceServicer_to_server, servicer, SERVICE_NAME)
            ]
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)


async def serve(settings: WalletsSettings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    await serve_until_signal(await start(settings))
