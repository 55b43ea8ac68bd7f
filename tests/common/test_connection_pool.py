"""The PostgreSQL pool's liveness check: idle connections are checked, busy ones are not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tapedeck_common.database import create_engine
from tapedeck_wallets.settings import WalletsSettings
from tests.support import postgres_database


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped after."""
    async with postgres_database() as url:
        yield url


def _engine(url: str, data_dir: Path, **settings: Any) -> tuple[AsyncEngine, list[object]]:
    """An engine as the services build it, and the list of connections its dialect pinged."""
    engine = create_engine(
        WalletsSettings(database_url=url, data_dir=data_dir, db_pool_size=1, **settings),
        service="wallets",
    )
    pinged: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pinged.append(dbapi_connection)
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    return engine, pinged


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_used_moments_ago_is_not_pinged(postgres_url, data_dir):
    engine, pinged = _engine(postgres_url, data_dir, db_pool_pre_ping_idle_seconds=60)
    try:
        pids = {await _backend_pid(engine) for _ in range(5)}
    finally:
        await engine.dispose()
    assert len(pids) == 1  # one pooled connection, reused
    assert pinged == []


async def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(postgres_url, data_dir):
    engine, pinged = _engine(postgres_url, data_dir, db_pool_pre_ping_idle_seconds=0)
    try:
        first = await _backend_pid(engine)
        admin = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        # The pooled connection is dead: the check finds out and the pool connects anew,
        # so the caller never sees the failure.
        second = await _backend_pid(engine)
    finally:
        await engine.dispose()
    assert second != first
    assert len(pinged) >= 1


async def test_pre_ping_off_never_pings(postgres_url, data_dir):
    engine, pinged = _engine(
        postgres_url, data_dir, db_pool_pre_ping=False, db_pool_pre_ping_idle_seconds=0
    )
    try:
        for _ in range(3):
            await _backend_pid(engine)
    finally:
        await engine.dispose()
    assert pinged == []
