"""Alembic migrations applied on start, one version table per service so they can share a database."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


async def upgrade_to_head(
    engine: AsyncEngine, *, script_location: Path, service: str, target: str = "head"
) -> None:
    """Apply every pending migration of the service (up to `target`) in one transaction."""
    await _migrate(engine, script_location, service, lambda c: command.upgrade(c, target))


async def downgrade_to(
    engine: AsyncEngine, *, script_location: Path, service: str, target: str
) -> None:
    """Revert the service's migrations down to `target` in one transaction."""
    await _migrate(engine, script_location, service, lambda c: command.downgrade(c, target))


async def _migrate(
    engine: AsyncEngine, script_location: Path, service: str, step: Callable[[Config], None]
) -> None:
    def _run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Replicas starting together must not run the same migration twice.
            lock = zlib.crc32(f"tapedeck-migrations-{service}".encode())
            connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
        config = Config()
        config.set_main_option("script_location", str(script_location))
        config.attributes["connection"] = connection
        config.attributes["version_table"] = f"alembic_version_{service}"
        step(config)

    async with engine.begin() as connection:
        await connection.run_sync(_run)


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's migrations/env.py: migrate on the connection upgrade_to_head hands in."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run on start through upgrade_to_head(), not the alembic CLI")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
