"""The outbox publishers share, through the live client's sender: events survive the live
service being down and arrive once; a commit wakes the drainer, a rollback publishes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tapedeck.live.v1 import live_pb2
from tapedeck_common.database import session_factory
from tapedeck_common.notify_repository import announce
from tapedeck_common.outbox import OTHERS_GRACE_SECONDS, OutboxDrainer, channel_of, publish
from tapedeck_common.outbox_repository import enqueue, outbox_table
from tapedeck_live_client.events import LiveEventsSender, start_live_events
from tests.live.publishing_support import live_database, outbox_count
from tests.live.support import event, running_live
from tests.support import counted_statements, eventually, free_port


@asynccontextmanager
async def publisher_database(database_url: str) -> AsyncIterator[tuple[AsyncEngine, object]]:
    """The publisher's own database with its outbox table."""
    metadata = MetaData()
    table = outbox_table(metadata, name="test_live_outbox")
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        yield engine, table
    finally:
        await engine.dispose()


async def outbox_rows(engine: AsyncEngine, table) -> list:
    async with engine.connect() as connection:
        return list((await connection.execute(select(table.c.event_id, table.c.refused))).all())


async def all_events(live) -> list[str]:
    reply = await live.stub.ListEvents(live_pb2.ListEventsRequest(page_size=1000))
    return sorted(e.event_id for e in reply.events)


def publisher(engine, table, port: int) -> OutboxDrainer:
    return OutboxDrainer(
        sessions=session_factory(engine),
        table=table,
        sender=LiveEventsSender(address=f"127.0.0.1:{port}", service_token=None, timeout_seconds=2),
        retry_max_seconds=0.2,
        batch_size=100,
    )


@dataclass(frozen=True)
class Publisher:
    """The settings a publishing service gives the live client."""

    live_address: str
    live_retry_max_seconds: float = 0.2
    service_token: SecretStr | None = None


async def test_events_enqueued_while_the_live_service_is_down_arrive_once_it_is_back(
    database_url: str, data_dir: Path
):
    port = free_port()
    async with publisher_database(database_url) as (engine, table):
        outbox = publisher(engine, table, port)
        outbox.start()
        try:
            async with session_factory(engine).begin() as session:
                await enqueue(
                    session=session,
                    table=table,
                    events=[
                        event(f"run-{i:03d}-finished", run_id=f"run-{i:03d}") for i in range(250)
                    ],
                )
            outbox.notify()
            assert len(await outbox_rows(engine, table)) == 250

            async with running_live(database_url, data_dir, port=port) as live:

                async def drained() -> bool:
                    return await outbox_rows(engine, table) == []

                await eventually(drained, message="outbox drained")
                assert await all_events(live) == [f"run-{i:03d}-finished" for i in range(250)]
        finally:
            await outbox.stop()


async def test_a_resend_after_a_crash_before_delete_is_stored_once(database_url, data_dir):
    async with (
        publisher_database(database_url) as (engine, table),
        running_live(database_url, data_dir) as live,
    ):
        events = [
            event(f"mismatch-{i}", type=live_pb2.EVENT_TYPE_RECONCILIATION_MISMATCH)
            for i in range(5)
        ]
        async with session_factory(engine).begin() as session:
            await enqueue(session=session, table=table, events=events)
        # A previous drain sent them and died before deleting its rows.
        await live.stub.AppendEvents(live_pb2.AppendEventsRequest(events=events[:3]))

        outbox = publisher(engine, table, live.app.port)
        try:
            assert await outbox.drain_once() == 5
        finally:
            await outbox.stop()

        assert await outbox_rows(engine, table) == []
        assert await all_events(live) == sorted(e.event_id for e in events)


async def test_an_event_the_live_service_refuses_is_parked_and_the_rest_delivered(
    database_url, data_dir
):
    async with (
        publisher_database(database_url) as (engine, table),
        running_live(database_url, data_dir) as live,
    ):
        bad = live_pb2.Event(event_id="no-type", time=event("x").time)
        async with session_factory(engine).begin() as session:
            await enqueue(session=session, table=table, events=[event("ok-1"), bad, event("ok-2")])
        outbox = publisher(engine, table, live.app.port)
        try:
            assert await outbox.drain_once() == 3
            assert await outbox.drain_once() == 0
        finally:
            await outbox.stop()

        assert await all_events(live) == ["ok-1", "ok-2"]
        (parked,) = await outbox_rows(engine, table)
        assert parked.event_id == "no-type"
        assert parked.refused.startswith("INVALID_ARGUMENT")
        async with engine.connect() as connection:
            assert await connection.scalar(select(func.count()).select_from(table)) == 1


async def test_a_commit_wakes_the_drainer_and_a_rollback_publishes_nothing(
    database_url: str, data_dir: Path, tmp_path: Path
):
    async with (
        publisher_database(database_url) as (engine, table),
        running_live(live_database(database_url, tmp_path), data_dir) as live,
    ):
        sessions = session_factory(engine)
        # Nothing polls: only a commit's wake-up can deliver.
        drainer = OutboxDrainer(
            sessions=sessions,
            table=table,
            sender=LiveEventsSender(address=f"127.0.0.1:{live.app.port}", service_token=None),
        ).start()
        try:
            for event_id in ("first", "rolled-back", "second"):
                async with sessions() as session:
                    await publish(session=session, table=table, events=[event(event_id)])
                    if event_id == "rolled-back":
                        await session.rollback()
                    else:
                        await session.commit()
                if event_id == "rolled-back":
                    continue

                async def arrived(event_id: str = event_id) -> list[str] | None:
                    found = await all_events(live)
                    return found if event_id in found else None

                found = await eventually(arrived, timeout=60, message=f"{event_id} delivered")
            assert found == ["first", "second"]
            assert await outbox_count(database_url, table) == 0
        finally:
            await drainer.stop()


async def test_a_publishing_service_drains_to_the_live_service_its_settings_name(
    database_url: str, data_dir: Path, tmp_path: Path
):
    async with (
        publisher_database(database_url) as (engine, table),
        running_live(live_database(database_url, tmp_path), data_dir) as live,
    ):
        async with session_factory(engine).begin() as session:
            await enqueue(session=session, table=table, events=[event("queued-before-start")])
        settings = Publisher(live_address=f"127.0.0.1:{live.app.port}")
        drainer = start_live_events(settings, sessions=session_factory(engine), table=table)
        try:

            async def arrived() -> bool:
                return await all_events(live) == ["queued-before-start"]

            await eventually(arrived, timeout=60, message="the queued event delivered")
        finally:
            await drainer.stop()
        assert await outbox_count(database_url, table) == 0


async def test_an_empty_live_address_keeps_the_events_in_the_outbox(database_url: str, caplog):
    async with publisher_database(database_url) as (engine, table):
        drainer = start_live_events(
            Publisher(live_address=""), sessions=session_factory(engine), table=table
        )
        try:
            async with session_factory(engine).begin() as session:
                await publish(session=session, table=table, events=[event("kept")])
            # Delivery is off: nothing is sent, nothing is retried, the event waits.
            assert await drainer.drain_once() == 0
            assert [row.event_id for row in await outbox_rows(engine, table)] == ["kept"]
        finally:
            await drainer.stop()
    assert "unreachable" not in caplog.text


async def test_an_empty_outbox_is_not_polled_and_a_dead_replicas_events_still_leave(
    database_url: str, data_dir: Path, tmp_path: Path
):
    async with (
        publisher_database(database_url) as (engine, table),
        running_live(live_database(database_url, tmp_path), data_dir) as live,
    ):
        outbox = publisher(engine, table, live.app.port).start()
        try:
            # Past the first drain, and the look a (re)connected LISTEN makes (PostgreSQL).
            await asyncio.sleep(OTHERS_GRACE_SECONDS + 0.5)
            with counted_statements(engine) as statements:
                await asyncio.sleep(1.0)
            assert statements == []
            # Another process publishes (what its `publish` writes) and dies before sending.
            other = create_async_engine(database_url)
            async with session_factory(other).begin() as session:
                await enqueue(session=session, table=table, events=[event("left-behind")])
                await announce(session, channel_of(table))
            await other.dispose()
            if engine.dialect.name != "postgresql":
                # The file belongs to this process: it was the one that died, and the event
                # leaves at its next start.
                await outbox.stop()
                outbox = publisher(engine, table, live.app.port).start()
            # On PostgreSQL its NOTIFY wakes this replica, which sends the event after the grace.

            async def delivered() -> list[str] | None:
                found = await all_events(live)
                return found or None

            assert await eventually(delivered, timeout=30, message="delivered") == ["left-behind"]
        finally:
            await outbox.stop()
