"""Helpers for the publishers' tests: a port for a live service started later, its database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck.live.v1 import live_pb2
from tests.live.support import Live


def live_database(database_url: str, directory: Path) -> str:
    """Return the live service's database beside a publisher's (its own file on SQLite)."""
    # Two services writing one SQLite file would wait on each other's locks.
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{directory / 'live.db'}"
    return database_url


async def outbox_count(database_url: str, table: Table) -> int:
    """Return how many events wait in a publisher's outbox."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(table))
            return int(count or 0)
    finally:
        await engine.dispose()


async def all_events(live: Live, event_filter: live_pb2.EventFilter) -> list[live_pb2.Event]:
    """Return every event matching the filter, all pages."""
    found: list[live_pb2.Event] = []
    token = ""
    while True:
        reply = await live.stub.ListEvents(
            live_pb2.ListEventsRequest(filter=event_filter, page_size=1000, page_token=token)
        )
        found.extend(reply.events)
        token = reply.next_page_token
        if not token:
            return found
