"""The session summarizer: a background task folding new events into the session summaries.

It follows the event store by sequence from a cursor stored with the summaries, one batch per
transaction, so every event is summarized exactly once whichever path stored it (AppendEvents,
the gate's refusals) and however many replicas run: the cursor row is locked while a batch is
summarized (on PostgreSQL; SQLite has one writer anyway). Appends make sequences visible in
order, so the cursor never passes an event that commits later. The notifier that wakes
subscribers wakes it too, and only it: at rest the summarizer reads nothing; summaries trail
appends by one batch's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_common.shielded import ShieldedWork
from tapedeck_live import session_repository
from tapedeck_live.notifier import Notifier
from tapedeck_live.sessions import PositionSummary, SessionSummary, position_key, summarize

logger = logging.getLogger(__name__)


class SessionSummarizer:
    """Keeps the session summaries up with the event store."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        notifier: Notifier,
        batch_size: int = 1000,
        retry_seconds: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._notifier = notifier
        self._batch_size = batch_size
        self._retry_seconds = retry_seconds
        self._work = ShieldedWork()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start following the store."""
        self._task = asyncio.create_task(self._run(), name="session-summarizer")

    async def stop(self) -> None:
        """Stop after the batch in progress, if any (cancelling a statement can strand its
        connection)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._work.wait_idle()

    async def _run(self) -> None:
        while True:
            seen = self._notifier.generation  # before reading: a wake-up meanwhile is not lost
            try:
                done = await self._work.run(self.summarize_batch())
            except Exception:
                logger.exception("summarizing sessions failed; retrying")
                await asyncio.sleep(self._retry_seconds)
                continue
            if done < self._batch_size:
                await self._notifier.wait(seen, within=None)

    async def summarize_batch(self) -> int:
        """Fold the next batch of events into the summaries; return how many were read."""
        async with self._sessions.begin() as session:
            cursor = await session_repository.lock_cursor(session=session)
            events = await session_repository.events_after(
                session=session, after=cursor, limit=self._batch_size
            )
            if not events:
                return 0
            mine = [event for event in events if event.run_id]
            summaries = await session_repository.load_summaries(
                session=session, run_ids={event.run_id for event in mine}
            )
            keys = {key for event in mine if (key := position_key(event)) is not None}
            positions = await session_repository.load_positions(session=session, keys=keys)
            changed: dict[str, SessionSummary] = {}
            moved: dict[tuple[str, str], PositionSummary] = {}
            for event in mine:
                summary = summaries.get(event.run_id)
                if summary is None:
                    summary = summaries[event.run_id] = SessionSummary(
                        run_id=event.run_id, first_sequence=event.sequence
                    )
                key = position_key(event)
                position = None
                if key is not None:
                    position = positions.get(key)
                    if position is None:
                        position = positions[key] = PositionSummary(
                            run_id=key[0], position_id=key[1]
                        )
                    moved[key] = position
                summarize(summary, event, position)
                changed[event.run_id] = summary
            await session_repository.save(
                session=session, summaries=changed.values(), positions=moved.values()
            )
            await session_repository.set_cursor(session=session, sequence=events[-1].sequence)
        return len(events)
