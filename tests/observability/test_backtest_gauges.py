"""The backtest service's sampled gauges on its /metrics: runs by state, playback cache bytes, the
outbox, the database pool."""

from __future__ import annotations

from tests.backtest.runs_support import running_service
from tests.observability.support import free_port, scrape
from tests.support import eventually


async def test_the_backtest_service_serves_its_domain_gauges(database_url, data_dir):
    port = free_port()
    async with running_service(
        database_url, data_dir, workers=0, metrics_port=port, metrics_sample_seconds=0.1
    ):

        async def sampled() -> dict | None:
            samples = scrape(port)
            return samples if ("tapedeck_playback_cache_bytes", frozenset()) in samples else None

        samples = await eventually(sampled, timeout=10, message="gauges sampled")

    runs = {
        dict(labels)["state"]: value
        for (name, labels), value in samples.items()
        if name == "tapedeck_runs"
    }
    assert runs == {"QUEUED": 0, "RUNNING": 0, "SUCCEEDED": 0, "FAILED": 0, "CANCELLED": 0}
    assert samples[("tapedeck_playback_cache_bytes", frozenset())] == 0
    outbox = frozenset({("outbox", "backtest_live_outbox")})
    assert samples[("tapedeck_outbox_events", outbox)] == 0
    assert samples[("tapedeck_outbox_oldest_event_age_seconds", outbox)] == 0
    assert ("tapedeck_db_pool_connections_in_use", frozenset()) in samples
