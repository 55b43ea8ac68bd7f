"""Catalogs and results on shared storage: the same run on local disk and on S3 (a real moto server).

The service finds the object store only through the AWS environment; the catalog and the results
live in the bucket, and the service plays a run back from there as it does from its own disk.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest import storage
from tapedeck_backtest.playback.files import SIDECAR, SIDECAR_DONE
from tests.backtest.playback_support import all_fills
from tests.backtest.runs_support import (
    Service,
    assert_same_result_files,
    comparable,
    running_service,
    spec,
)
from tests.s3_support import S3Server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, with its AWS environment set for this test's process."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


def on_s3(server: S3Server) -> dict[str, str]:
    """Return settings that put the catalog and the results in a fresh prefix of the bucket."""
    prefix = uuid.uuid4().hex[:12]
    return {
        "catalog_dir": server.url(prefix, "catalog"),
        "results_dir": server.url(prefix, "runs"),
    }


async def played_back(service: Service, name: str) -> dict[str, Any]:
    """Return what the playback RPCs answer for a finished run (all but its content version)."""
    candles = [
        m.chunk
        async for m in service.stub.StreamCandles(
            pb.StreamCandlesRequest(backtest=name, indicators=[pb.INDICATOR_EMA_20])
        )
    ]
    equity = [
        m.chunk async for m in service.stub.StreamEquity(pb.StreamEquityRequest(backtest=name))
    ]
    fills = await all_fills(service.stub, name, page_size=50)
    assert fills, "the run filled orders"
    states = [
        (
            await service.stub.GetPortfolioState(
                pb.GetPortfolioStateRequest(backtest=name, time=fill.time)
            )
        ).state
        for fill in fills[:: max(1, len(fills) // 5)]
    ]
    return {
        "candles": candles,
        "equity": equity,
        "fills": [(f.time.ToNanoseconds(), f.side, f.quantity, f.price) for f in fills],
        "states": states,
    }


async def test_a_run_on_s3_gives_the_fills_stats_files_and_playback_of_the_same_local_run(
    s3_env: S3Server, tmp_path: Path
) -> None:
    finished: dict[str, tuple[pb.Backtest, dict[str, Any]]] = {}
    remote = on_s3(s3_env)
    for where, settings in (("local", {}), ("s3", remote)):
        data_dir = tmp_path / where
        data_dir.mkdir()
        # One database per service: the second would otherwise answer from the first's run cache.
        url = f"sqlite+aiosqlite:///{data_dir / 'test.db'}"
        async with running_service(url, data_dir, workers=1, **settings) as service:
            dataset = await service.import_trades()
            created = await service.stub.CreateBacktest(
                pb.CreateBacktestRequest(spec=spec(dataset))
            )
            final = await service.wait(created.backtest.name, seconds=120)
            assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
            finished[where] = (final, await played_back(service, final.name))

    (local, local_playback), (on_bucket, bucket_playback) = finished["local"], finished["s3"]
    assert on_bucket.stats.fill_count > 0
    assert comparable(on_bucket.stats) == comparable(local.stats)
    assert bucket_playback == local_playback

    # The catalog and the results are in the bucket, not on the service's disk.
    assert not (tmp_path / "s3" / "catalog").exists()
    assert not (tmp_path / "s3" / "runs").exists()
    dataset_id = on_bucket.spec.dataset.split("/")[1]
    assert storage.exists(storage.join(remote["catalog_dir"], dataset_id, "data"))
    run_url = storage.join(remote["results_dir"], on_bucket.name.split("/")[1])
    # The playback files built at the first read went to the bucket too, for the other replicas.
    assert storage.exists(storage.join(run_url, SIDECAR, SIDECAR_DONE))
    copy = tmp_path / "from-bucket"
    storage.download(run_url, copy, skip=SIDECAR)
    assert_same_result_files(copy, tmp_path / "local" / "runs" / local.name.split("/")[1])


async def test_a_second_replica_plays_back_a_run_from_the_bucket_without_building_its_files(
    s3_env: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="tapedeck_backtest.playback.store")
    remote = on_s3(s3_env)
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    async with running_service(url, tmp_path / "one", workers=1, **remote) as one:
        dataset = await one.import_trades()
        created = await one.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        final = await one.wait(created.backtest.name, seconds=120)
        assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
        first = await played_back(one, final.name)
    building = "building the playback files"
    assert building in caplog.text  # the first replica built them
    caplog.clear()
    async with running_service(url, tmp_path / "two", workers=0, **remote) as two:
        assert await played_back(two, final.name) == first
    assert building not in caplog.text  # the second downloaded them
    run_id = final.name.split("/")[1]
    assert (tmp_path / "two" / "cache" / "runs" / run_id / SIDECAR / SIDECAR_DONE).is_file()
