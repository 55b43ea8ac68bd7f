"""Database work that a cancelled caller lets finish.

Cancelling a task in the middle of a statement can strand its pooled connection (the garbage
collector later finds it checked out and terminates it). A subscriber that goes away, or a
background loop that stops, therefore lets its unit of work finish on its own, and whoever
disposes of the engine first waits for those units.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Each unit is bounded by the pool and statement timeouts; this only keeps a stop from hanging.
_WAIT_SECONDS = 10.0


class ShieldedWork:
    """Units of database work that survive their caller's cancellation, awaited before disposal."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Await `work`, which runs to its end even if the caller is cancelled meanwhile."""
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    async def wait_idle(self) -> None:
        """Wait for units whose callers went away (call before disposing the engine)."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=_WAIT_SECONDS)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
