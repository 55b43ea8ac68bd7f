"""Publishing through a service's drainer: a commit wakes it at once; a rollback sends nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck.live.v1 import live_pb2
from tapedeck_common.database import session_factory
from tapedeck_common.outbox import outbox_table
from tapedeck_common.outbox_drainers import publish, start_drainer, stop_drainer
from tests.live.publishing_support import all_events, live_database, outbox_count
from tests.live.support import event, running_live
from tests.support import eventually


async def test_a_commit_wakes_the_drainer_and_a_rollback_publishes_nothing(
    database_url: str, data_dir: Path, tmp_path: Path
):
    metadata = MetaData()
    table = outbox_table(metadata, service="test")
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    sessions = session_factory(engine)
    try:
        async with running_live(live_database(database_url, tmp_path), data_dir) as live:
            drainer = start_drainer(
                sessions=sessions,
                table=table,
                address=f"127.0.0.1:{live.app.port}",
                service_token=None,
                retry_max_seconds=0.2,
            )
            try:
                for event_id in ("first", "rolled-back", "second"):
                    async with sessions() as session:
                        await publish(session=session, table=table, events=[event(event_id)])
                        if event_id == "rolled-back":
                            await session.rollback()
                        else:
                            await session.commit()

                    async def arrived(event_id: str = event_id) -> list[str] | None:
                        found = sorted(
                            e.event_id for e in await all_events(live, live_pb2.EventFilter())
                        )
                        return found if event_id in found else None

                    if event_id == "rolled-back":
                        continue
                    # "second" comes while the drainer waits out its 5 s poll: the commit woke it.
                    found = await eventually(arrived, timeout=3, message=f"{event_id} delivered")
                assert found == ["first", "second"]
                assert await outbox_count(database_url, table) == 0
            finally:
                await stop_drainer(drainer)
    finally:
        await engine.dispose()
