"""The durable run queue as a worker pool uses it: one transaction per step of a run's life.

Claiming, finishing and releasing a run each publish its live events (`publishing.py`) in the
transaction that changes its state, so an event exists exactly when its state change does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_backtest.runs import publishing, repository
from tapedeck_backtest.runs.domain import Run, RunProgress, RunState, Stats, release
from tapedeck_backtest.runs.publishing import Denial


def _now() -> datetime:
    return datetime.now(UTC)


class RunQueue:
    """QUEUED runs in the database, claimed by one owner (a worker pool) each."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], postgres: bool) -> None:
        self._sessions = sessions
        self._postgres = postgres

    async def claim(self, *, owner: str) -> Run | None:
        """Move the oldest QUEUED run to RUNNING under `owner` and return it, or None."""
        async with self._sessions.begin() as session:
            now = _now()
            claimed = await repository.claim_next(
                session=session, owner=owner, now=now, postgres=self._postgres
            )
            if claimed is None:
                return None
            run_id, attempt = claimed
            facts = await repository.run_facts(session=session, run_id=run_id)
            await publishing.run_started(
                session=session, run_id=run_id, facts=facts, attempt=attempt, owner=owner, now=now
            )
            return await repository.get_run(session=session, run_id=run_id)

    async def get(self, run_id: str) -> Run:
        """Return one run."""
        async with self._sessions() as session:
            return await repository.get_run(session=session, run_id=run_id)

    async def report(self, *, run_id: str, owner: str, progress: RunProgress) -> None:
        """Store a running run's progress (and renew its lease) while `owner` holds it."""
        async with self._sessions.begin() as session:
            await repository.update_progress(
                session=session, run_id=run_id, owner=owner, progress=progress, now=_now()
            )

    async def renew(self, *, owner: str, run_ids: Sequence[str]) -> None:
        """Renew `owner`'s lease on the runs it is executing."""
        async with self._sessions.begin() as session:
            await repository.heartbeat(session=session, owner=owner, run_ids=run_ids, now=_now())

    async def still_running(self, *, owner: str, run_ids: Sequence[str]) -> set[str]:
        """Return which of these runs are still RUNNING under `owner` (the rest were cancelled)."""
        async with self._sessions() as session:
            return await repository.still_running(session=session, owner=owner, run_ids=run_ids)

    async def finish(
        self,
        *,
        run_id: str,
        owner: str,
        state: RunState,
        stats: Stats | None = None,
        progress: RunProgress | None = None,
        error_message: str = "",
        denials: Sequence[Denial] = (),
    ) -> bool:
        """End a run `owner` holds, with its live events; False if cancelled or taken over."""
        async with self._sessions.begin() as session:
            now = _now()
            ended = await repository.finish_run(
                session=session,
                run_id=run_id,
                owner=owner,
                state=state,
                now=now,
                stats=stats,
                progress=progress,
                error_message=error_message,
            )
            if ended:
                await publishing.run_ended(
                    session=session,
                    run_id=run_id,
                    facts=await repository.run_facts(session=session, run_id=run_id),
                    state=state,
                    now=now,
                    stats=stats,
                    error_message=error_message,
                    denials=denials,
                )
            return ended

    async def release(
        self,
        *,
        run_id: str,
        owner: str | None,
        reason: str,
        max_attempts: int,
        count_attempt: bool = True,
    ) -> RunState | None:
        """Re-queue a RUNNING run whose worker is gone, or fail it once it used its attempts.

        `owner=None` releases whoever holds it (a dead service's run). Returns the new state, or
        None when the run is no longer RUNNING (under `owner`).
        """
        async with self._sessions.begin() as session:
            attempts = await repository.running_attempts(
                session=session, run_id=run_id, owner=owner
            )
            if attempts is None:
                return None
            now = _now()
            outcome = release(
                attempts=attempts,
                max_attempts=max_attempts,
                count_attempt=count_attempt,
                reason=reason,
            )
            if not await repository.release_run(
                session=session, run_id=run_id, owner=owner, outcome=outcome, now=now
            ):
                return None
            if outcome.state is RunState.FAILED:
                await publishing.run_ended(
                    session=session,
                    run_id=run_id,
                    facts=await repository.run_facts(session=session, run_id=run_id),
                    state=outcome.state,
                    now=now,
                    error_message=outcome.error_message,
                )
            return outcome.state

    async def orphans(
        self, *, lease: timedelta, owner: str, owner_is_dead: Callable[[str | None], bool]
    ) -> tuple[list[str], bool]:
        """Return the runs to recover and whether any run is queued or held by another owner."""
        async with self._sessions() as session:
            candidates = await repository.orphan_candidates(
                session=session, lease_expired_before=_now() - lease
            )
        orphans = sorted(
            run_id
            for run_id, run_owner, state, expired in candidates
            if state is RunState.RUNNING and (expired or owner_is_dead(run_owner))
        )
        elsewhere = any(
            state is RunState.QUEUED or run_owner != owner
            for _run_id, run_owner, state, _expired in candidates
        )
        return orphans, elsewhere
