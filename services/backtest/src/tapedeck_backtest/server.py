"""Build and run the backtest service."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck_common.database import session_factory
from tapedeck_common.runtime import (
    Components,
    ServiceApp,
    serve_until_signal,
    start_service,
)
from tapedeck_common.server import Registration
from tapedeck_backtest.servicer import BacktestServicer
from tapedeck_backtest.settings import BacktestSettings

SERVICE = "backtest"
SERVICE_NAME = backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"


async def start(settings: BacktestSettings) -> ServiceApp:
    """Migrate the database and start serving."""

    async def build(engine: AsyncEngine) -> Components:
        servicer = BacktestServicer(session_factory(engine))
        return Components(
            registrations=[
                Registration(backtest_pb2_grpc.add_BacktestServiceServicer_to_server, servicer, SERVICE_NAME)
            ]
        )

    return await start_service(settings, service=SERVICE, migrations=MIGRATIONS, build=build)


async def serve(settings: BacktestSettings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    await serve_until_signal(await start(settings))
