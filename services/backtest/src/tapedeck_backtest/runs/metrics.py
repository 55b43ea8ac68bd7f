"""The run queue's gauges: runs by state, sampled from the database for Prometheus."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_backtest.runs import repository
from tapedeck_common.metrics import Probe, Sample


def run_probes(sessions: async_sessionmaker[AsyncSession]) -> list[Probe]:
    """Return the probe of runs by state (QUEUED is the queue's depth)."""

    async def by_state() -> list[Sample]:
        async with sessions() as session:
            counts = await repository.count_by_state(session=session)
        return [((state.value,), float(count)) for state, count in counts.items()]

    return [
        Probe(
            "tapedeck_runs",
            "Backtest runs by state; state QUEUED is the run queue's depth.",
            ("state",),
            by_state,
        )
    ]
