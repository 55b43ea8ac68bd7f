"""A service whose database stalls says NOT_SERVING on its health service and SERVING once the
database answers again: a write lock held by another connection, or every pooled connection held,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck.live.v1 import live_pb2
from tests.live.support import Live, event, running_live
from tests.support import eventually

LIVE = "tapedeck.live.v1.LiveService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
QUICK = {"db_stall_seconds": 0.5, "db_check_seconds": 0.1}


@asynccontextmanager
async def write_lock_held(database_url: str) -> AsyncIterator[None]:
    """Hold, from another connection, the lock the live service's writes need."""
    if database_url.startswith("sqlite"):
        other = create_async_engine(database_url)
        try:
            async with other.connect() as connection:
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield
                await connection.rollback()
        finally:
            await other.dispose()
        return
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


async def statuses(live: Live) -> set[int]:
    health = health_pb2_grpc.HealthStub(live.channel)
    return {
        (await health.Check(health_pb2.HealthCheckRequest(service=name))).status
        for name in (LIVE, "")
    }


async def becomes(live: Live, status: int, what: str) -> None:
    async def reached() -> bool:
        return await statuses(live) == {status}

    await eventually(reached, timeout=20, message=what)


async def test_a_write_lock_held_past_the_bound_turns_health_not_serving_until_released(
    database_url, data_dir
):
    async with running_live(database_url, data_dir, **QUICK) as live:
        await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=[event("before")]))
        assert await statuses(live) == {SERVING}
        async with write_lock_held(database_url):
            blocked = asyncio.ensure_future(
                live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=[event("blocked")]))
            )
            await becomes(live, NOT_SERVING, "NOT_SERVING while the lock is held")
            assert not blocked.done()
        reply = await blocked
        assert len(reply.sequences) == 1
        await becomes(live, SERVING, "SERVING once the lock is released")


async def test_a_pool_with_no_free_connection_past_the_bound_turns_health_not_serving(
    database_url, data_dir
):
    async with running_live(
        database_url, data_dir, db_pool_size=1, db_max_overflow=0, **QUICK
    ) as live:
        async with live.app.engine.connect():  # the pool's only connection
            listing = asyncio.ensure_future(live.stub.ListEvents(live_pb2.ListEventsRequest()))
            await becomes(live, NOT_SERVING, "NOT_SERVING while the pool has nothing free")
        await listing
        await becomes(live, SERVING, "SERVING once a connection is free")
