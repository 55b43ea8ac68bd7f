"""Wake-ups for live subscribers: in process, and across replicas (`tapedeck_common.listener`).

A wake-up carries no events, only "the store may have grown": the shared reader (tail.Fanout)
then reads the new events once. Wake-ups coalesce, so nothing queues up.
"""

from __future__ import annotations

import asyncio

# How the LISTEN connection shows in pg_stat_activity.
LISTENER_APPLICATION = "tapedeck-live-listener"


class Notifier:
    """A generation counter subscribers wait on; every wake() bumps it and releases all waiters."""

    def __init__(self) -> None:
        self._generation = 0
        self._changed = asyncio.Event()

    @property
    def generation(self) -> int:
        """Return the current generation; pass it to wait() to not miss a wake-up in between."""
        return self._generation

    def wake(self) -> None:
        """Tell every waiting subscriber the store may have grown."""
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, seen: int, *, within: float | None) -> bool:
        """Wait until the generation moves past `seen`; False when `within` seconds passed first.

        `within=None` waits for as long as it takes.
        """
        if self._generation != seen:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), within)
        except TimeoutError:
            return False
        return True
