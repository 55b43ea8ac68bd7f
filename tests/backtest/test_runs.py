"""Backtest runs through a real server: queue, workers, progress, cache, cancel, failures."""

from __future__ import annotations

import time

import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tests.backtest.runs_support import running_service, spec


async def test_backtest_runs_to_succeeded_with_stats_and_progress(database_url, data_dir):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        started = time.monotonic()
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        assert time.monotonic() - started < 2.0
        assert created.backtest.state == pb.BACKTEST_STATE_QUEUED
        assert not created.cached
        states = []
        async for message in service.stub.WatchBacktest(
            pb.WatchBacktestRequest(name=created.backtest.name), timeout=60
        ):
            states.append(message.backtest.state)
        final = message.backtest
        assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
        assert states[-1] == pb.BACKTEST_STATE_SUCCEEDED
        assert final.progress.percent == pytest.approx(100.0)
        assert final.progress.events_processed == 4000
        assert final.stats.fill_count > 0
        assert final.stats.trade_count > 0
        assert final.content_version.startswith("succeeded-")
