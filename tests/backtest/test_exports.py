"""ExportBacktest through a real server on SQLite and PostgreSQL: every file round-trips to the
answers of the RPCs that serve the same results, in CSV and in Parquet, with its size and SHA-256."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from google.protobuf import json_format

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.playback.exports import EXPORT_BATCH_ROWS
from tapedeck_backtest.runs.domain import RunState
from tests.backtest.playback_support import (
    MINUTE,
    T0,
    insert_run,
    random_prices,
    sessions_of,
    write_run,
)
from tests.backtest.runs_support import running_service, spec
from tests.backtest.test_trades import list_all
from tests.support import field_violations


async def export(stub, **request) -> dict[str, tuple[str, bytes]]:
    """Return each exported file's content type and bytes, checking its chunks' size and SHA-256."""
    files: dict[str, tuple[str, bytes]] = {}
    parts: list[bytes] = []
    async for message in stub.ExportBacktest(pb.ExportBacktestRequest(**request)):
        parts.append(message.data)
        if message.last_chunk:
            data = b"".join(parts)
            assert message.file_size == len(data)
            assert message.sha256 == hashlib.sha256(data).hexdigest()
            files[message.file_name] = (message.content_type, data)
            parts = []
    assert parts == []
    return files


def table(name: str, data: bytes) -> pa.Table:
    if name.endswith(".csv"):
        return pa_csv.read_csv(io.BytesIO(data))
    return pq.read_table(io.BytesIO(data))


async def test_every_export_file_round_trips_to_the_rpc_answers(database_url: str, data_dir: Path):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        run = await service.wait(created.backtest.name)
        assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
        fills = (
            await service.stub.ListFills(pb.ListFillsRequest(backtest=run.name, page_size=10000))
        ).fills
        trades = await list_all(service.stub, backtest=run.name)
        curve = [
            m async for m in service.stub.StreamEquity(pb.StreamEquityRequest(backtest=run.name))
        ]
        candles = [
            m async for m in service.stub.StreamCandles(pb.StreamCandlesRequest(backtest=run.name))
        ]
        assert fills
        assert trades

        for form, suffix, content_type in (
            (pb.EXPORT_FORMAT_CSV, "csv", "text/csv"),
            (pb.EXPORT_FORMAT_PARQUET, "parquet", "application/vnd.apache.parquet"),
        ):
            files = await export(service.stub, backtest=run.name, format=form, chunk_size=65536)
            names = [f"{p}.{suffix}" for p in ("candles", "fills", "trades", "equity")]
            assert list(files) == [*names, "spec.json", "statistics.json"]
            assert {files[n][0] for n in names} == {content_type}

            exported = table(names[1], files[names[1]][1])
            assert exported.num_rows == len(fills)
            assert exported.column("time").to_pylist() == [f.time.ToNanoseconds() for f in fills]
            exported = table(names[2], files[names[2]][1])
            assert exported.column("trade_id").to_pylist() == [t.trade_id for t in trades]
            exported = table(names[3], files[names[3]][1])
            assert exported.column("time").to_pylist() == [t for m in curve for t in m.chunk.times]
            assert exported.column("equity").to_pylist() == pytest.approx(
                [e for m in curve for e in m.chunk.equity]
            )
            exported = table(names[0], files[names[0]][1])
            assert exported.column("close").to_pylist() == pytest.approx(
                [c for m in candles for c in m.chunk.close]
            )

            stats = json_format.Parse(files["statistics.json"][1], pb.BacktestStats())
            assert json_format.MessageToDict(stats) == json_format.MessageToDict(run.stats)
            assert json_format.Parse(files["spec.json"][1], pb.BacktestSpec()) == run.spec

        # Parts in the order asked; a large file in many chunks.
        files = await export(
            service.stub,
            backtest=run.name,
            parts=[pb.EXPORT_PART_STATISTICS, pb.EXPORT_PART_FILLS],
            chunk_size=65536,
        )
        assert list(files) == ["statistics.json", "fills.csv"]


async def test_bad_exports_name_their_field(database_url: str, data_dir: Path):
    async with running_service(database_url, data_dir, workers=0) as service:
        cases = [
            (pb.ExportBacktestRequest(backtest="runs/x"), "backtest"),
            (pb.ExportBacktestRequest(backtest="backtests/x", parts=[999]), "parts[0]"),  # type: ignore[list-item]
            (
                pb.ExportBacktestRequest(
                    backtest="backtests/x", parts=[pb.EXPORT_PART_FILLS, pb.EXPORT_PART_FILLS]
                ),
                "parts",
            ),
            (pb.ExportBacktestRequest(backtest="backtests/x", format=7), "format"),  # type: ignore[arg-type]
            (pb.ExportBacktestRequest(backtest="backtests/x", chunk_size=10), "chunk_size"),
        ]
        for request, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                async for _ in service.stub.ExportBacktest(request):
                    pass
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in field_violations(error.value)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for _ in service.stub.ExportBacktest(
                pb.ExportBacktestRequest(backtest="backtests/nope")
            ):
                pass
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_large_table_is_exported_batch_by_batch_in_bounded_chunks(tmp_path: Path):
    # More candles than one batch of rows: the file is written as it is read, in many chunks of
    # at most chunk_size bytes, and still reads back to the run's whole table, in both formats.
    count = 2 * EXPORT_BATCH_ROWS + 123
    data_dir = tmp_path / "svc"
    data_dir.mkdir()
    async with running_service(
        f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", data_dir, workers=0
    ) as service:
        prices = random_prices(start_ns=T0, count=count, step_ns=MINUTE, seed=7)
        run = write_run(data_dir / "runs", prices=prices, fills=[])
        await insert_run(sessions_of(service.app), run.run_id, state=RunState.SUCCEEDED)
        expected = pq.read_table(data_dir / "runs" / run.run_id / "candles.parquet")
        assert expected.num_rows == count

        for form, suffix in ((pb.EXPORT_FORMAT_CSV, "csv"), (pb.EXPORT_FORMAT_PARQUET, "parquet")):
            sizes = []
            request = pb.ExportBacktestRequest(
                backtest=f"backtests/{run.run_id}",
                format=form,
                parts=[pb.EXPORT_PART_CANDLES],
                chunk_size=65536,
            )
            async for message in service.stub.ExportBacktest(request):
                sizes.append(len(message.data))
            assert max(sizes) == 65536
            assert len(sizes) > 10
            files = await export(
                service.stub,
                backtest=f"backtests/{run.run_id}",
                format=form,
                parts=[pb.EXPORT_PART_CANDLES],
                chunk_size=65536,
            )
            exported = table(f"candles.{suffix}", files[f"candles.{suffix}"][1])
            assert exported.num_rows == count
            for column in ("time", "open", "high", "low", "close", "volume"):
                assert exported.column(column).to_pylist() == pytest.approx(
                    expected.column(column).to_pylist(), nan_ok=True
                )
