"""The backtest service's sampled gauges on its /metrics: runs by state, playback cache bytes, the
outbox, the database pool."""

from __future__ import annotations

from sqlalchemy import event

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tests.backtest.runs_support import running_service, spec
from tests.observability.support import scrape
from tests.support import eventually, free_port


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


async def test_gauges_are_sampled_at_rest_without_a_transaction_and_again_after_a_change(
    database_url, data_dir
):
    port = free_port()
    async with running_service(
        database_url, data_dir, workers=0, metrics_port=port, metrics_sample_seconds=0.05
    ) as service:

        async def sampled() -> bool:
            return ("tapedeck_runs", frozenset({("state", "QUEUED")})) in scrape(port)

        await eventually(sampled, timeout=10, message="gauges sampled")
        checkouts = []
        event.listen(service.app.engine.sync_engine, "checkout", lambda *_: checkouts.append(1))
        assert service.app.sampler is not None
        for _ in range(3):
            await service.app.sampler.sample()
        at_rest = len(checkouts)

        dataset = await service.import_trades(rows=100)
        await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))

        async def queued() -> bool:
            return scrape(port)[("tapedeck_runs", frozenset({("state", "QUEUED")}))] == 1

        await eventually(queued, timeout=10, message="the queued run counted")

    assert at_rest == 0
