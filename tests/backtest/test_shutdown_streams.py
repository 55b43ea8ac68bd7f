"""The backtest service stopping: a WatchBacktest and an ImportDataset still open end UNAVAILABLE
with the shutdown message and a retry delay, and calling again on a new start picks up."""

from __future__ import annotations

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_common.interceptors import SHUTDOWN_RETRY_SECONDS, SHUTTING_DOWN
from tests.backtest.reference import BTCUSDT
from tests.backtest.runs_support import running_service, write_trades
from tests.backtest.test_runs import running_with_progress, slow_spec
from tests.support import retry_delay


async def ending(call) -> grpc.aio.AioRpcError:
    """Read a stream to its end; return the status it ended with."""
    try:
        while await call.read() is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the stream ended OK")


def assert_ended_by_shutdown(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert error.details() == SHUTTING_DOWN
    assert retry_delay(error) == SHUTDOWN_RETRY_SECONDS


async def test_a_watch_open_at_shutdown_ends_unavailable_and_watching_again_resumes(
    database_url, data_dir
):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(
            pb.CreateBacktestRequest(spec=slow_spec(dataset, sleep_seconds=0.05))
        )
        name = created.backtest.name
        await running_with_progress(service, name)
        watch = service.stub.WatchBacktest(pb.WatchBacktestRequest(name=name))
        assert (await watch.read()).backtest.state == pb.BACKTEST_STATE_RUNNING
        await service.app.stop()  # also run again by the fixture: stopping twice is harmless
        ended = await ending(watch)
    assert_ended_by_shutdown(ended)

    async with running_service(database_url, data_dir) as service:
        # The run went back to the queue when its service stopped; a new watch follows it.
        assert (await service.wait(name, seconds=120)).state == pb.BACKTEST_STATE_SUCCEEDED


async def test_an_import_open_at_shutdown_ends_unavailable_and_importing_again_succeeds(
    database_url, data_dir
):
    async with running_service(database_url, data_dir, workers=0) as service:
        write_trades(service.raw_dir / "big.parquet", rows=400_000)
        call = service.stub.ImportDataset(
            pb.ImportDatasetRequest(
                source_path="big.parquet", kind=pb.DATA_KIND_TRADES, instrument=BTCUSDT
            )
        )
        first = await call.read()
        assert first.WhichOneof("event") == "progress"
        await service.app.stop()
        ended = await ending(call)
    assert_ended_by_shutdown(ended)

    async with running_service(database_url, data_dir, workers=0) as service:
        last = await service.import_file(
            "big.parquet", kind=pb.DATA_KIND_TRADES, instrument=BTCUSDT
        )
        assert last.dataset.row_count == 400_000
