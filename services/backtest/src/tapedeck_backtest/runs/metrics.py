"""The run queue's metrics: runs by state (sampled from the database), how long runs took and
how fast the engine went."""

from __future__ import annotations

from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_backtest.runs import repository
from tapedeck_backtest.runs.domain import RunState
from tapedeck_common.database import Commits
from tapedeck_common.metrics import Probe, Sample

RUN_DURATION = Histogram(
    "tapedeck_run_duration_seconds",
    "Time from a worker taking a run to its final state, by that state.",
    ("state",),
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
ENGINE_RATE = Histogram(
    "tapedeck_engine_events_per_second",
    "Bars or ticks per second the engine processed in each succeeded run.",
    buckets=(1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6),
)


def run_ended(state: RunState, seconds: float, events_per_second: float | None = None) -> None:
    """Count a run a worker held reaching its final state (and the engine's rate, if it ran)."""
    RUN_DURATION.labels(state.value).observe(seconds)
    if events_per_second is not None:
        ENGINE_RATE.observe(events_per_second)


def run_probes(sessions: async_sessionmaker[AsyncSession], *, commits: Commits) -> list[Probe]:
    """Return the probe of runs by state (QUEUED is the queue's depth).

    Read again only after this process committed: a run changes state in a transaction of a
    replica, so another replica's change shows once this one commits too (a claim is one).
    """
    read_at: int | None = None

    async def by_state() -> list[Sample]:
        nonlocal read_at
        at = commits.count
        async with sessions() as session:
            counts = await repository.count_by_state(session=session)
        read_at = at
        return [((state.value,), float(count)) for state, count in counts.items()]

    return [
        Probe(
            "tapedeck_runs",
            "Backtest runs by state; state QUEUED is the run queue's depth.",
            ("state",),
            by_state,
            due=lambda: read_at != commits.count,
        )
    ]
