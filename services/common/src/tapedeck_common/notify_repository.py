"""NOTIFY in a transaction: what a replica's commit tells the others' listeners (`listener.py`)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def announce(session: AsyncSession, channel: str) -> None:
    """Notify `channel` when the session's transaction commits (PostgreSQL only).

    The payload is empty, so the notifications of one transaction coalesce into one; a listener
    woken at the commit always finds what the transaction wrote.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})
