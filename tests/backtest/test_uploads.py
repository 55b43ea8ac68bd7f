"""Chunked uploads and the importable files list through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.backtest.v1 import backtest_pb2_grpc
from tapedeck_backtest import server
from tapedeck_backtest.datasets.uploads import MAX_CHUNK_BYTES, Uploads
from tapedeck_backtest.settings import BacktestSettings
from tests.backtest.reference import BTCUSDT
from tests.support import field_violations


@asynccontextmanager
async def backtest_service(
    database_url: str, data_dir: Path, *, upload_max_bytes: int = 1 << 20
) -> AsyncIterator[backtest_pb2_grpc.BacktestServiceStub]:
    settings = BacktestSettings(
        database_url=database_url,
        port=0,
        data_dir=data_dir,
        workers=0,
        upload_max_bytes=upload_max_bytes,
    )
    app = await server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield backtest_pb2_grpc.BacktestServiceStub(channel)
    finally:
        await app.stop()


def bar_csv(rows: int) -> bytes:
    start = datetime(2024, 1, 8, tzinfo=UTC)
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(rows):
        price = 40_000 + (i % 50) * 3.5
        ts = (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S")
        lines.append(f"{ts},{price},{price + 10},{price - 10},{price + 2.5},{1.5 + i % 7}")
    return ("\n".join(lines) + "\n").encode()


async def send(
    stub: backtest_pb2_grpc.BacktestServiceStub, name: str, data: bytes, *, chunk: int
) -> pb.Upload:
    """Send `data` from the upload's offset on, following the offset each answer gives."""
    upload = (await stub.GetUpload(pb.GetUploadRequest(name=name))).upload
    while not upload.complete:
        piece = data[upload.next_offset : upload.next_offset + chunk]
        answer = await stub.UploadChunk(
            pb.UploadChunkRequest(name=name, offset=upload.next_offset, data=piece)
        )
        upload = answer.upload
    return upload


async def test_an_upload_in_chunks_lands_under_the_data_root_and_imports(
    database_url: str, data_dir: Path
):
    content = bar_csv(2000)
    async with backtest_service(database_url, data_dir) as stub:
        started = await stub.StartUpload(
            pb.StartUploadRequest(file_name="bars 2024.csv", total_bytes=len(content))
        )
        assert started.upload.next_offset == 0
        assert not started.upload.complete
        # Nothing is listed (nor importable) before the last byte.
        files = await stub.ListImportableFiles(pb.ListImportableFilesRequest())
        assert [f.path for f in files.files] == []

        done = await send(stub, started.upload.name, content, chunk=10_000)
        assert done.complete
        assert done.source_path == "uploads/bars 2024.csv"
        assert done.next_offset == len(content)
        assert (data_dir / "raw" / "uploads" / "bars 2024.csv").read_bytes() == content

        files = await stub.ListImportableFiles(pb.ListImportableFilesRequest())
        [listed] = files.files
        assert listed.path == "uploads/bars 2024.csv"
        assert listed.size_bytes == len(content)
        assert listed.format == pb.FILE_FORMAT_CSV
        assert listed.guessed_kind == pb.DATA_KIND_BARS

        request = pb.ImportDatasetRequest(
            source_path=done.source_path, instrument=BTCUSDT, kind=pb.DATA_KIND_BARS
        )
        messages = [m async for m in stub.ImportDataset(request)]
        assert messages[-1].dataset.row_count == 2000

        # The last chunk sent again (its answer lost) is answered with the finished upload.
        again = await stub.UploadChunk(
            pb.UploadChunkRequest(name=done.name, offset=0, data=content[:10])
        )
        assert again.upload.complete
        assert (data_dir / "raw" / "uploads" / "bars 2024.csv").read_bytes() == content


async def test_a_chunk_at_the_wrong_offset_writes_nothing_and_names_the_offset_to_resume(
    database_url: str, data_dir: Path
):
    content = bar_csv(300)
    async with backtest_service(database_url, data_dir) as stub:
        name = (
            await stub.StartUpload(
                pb.StartUploadRequest(file_name="b.csv", total_bytes=len(content))
            )
        ).upload.name
        first = await stub.UploadChunk(
            pb.UploadChunkRequest(name=name, offset=0, data=content[:100])
        )
        assert first.upload.next_offset == 100
        ahead = await stub.UploadChunk(
            pb.UploadChunkRequest(name=name, offset=250, data=content[250:300])
        )
        assert ahead.upload.next_offset == 100
        behind = await stub.UploadChunk(pb.UploadChunkRequest(name=name, offset=40, data=b"xx"))
        assert behind.upload.next_offset == 100
        done = await send(stub, name, content, chunk=4096)
        assert done.complete
        assert (data_dir / "raw" / "uploads" / "b.csv").read_bytes() == content


async def test_writers_racing_for_one_offset_write_one_chunk(tmp_path: Path):
    # Straight at the application: through one gRPC connection the chunks arrive one by one,
    # while replicas sharing the staging folder (or threads here) do race.
    uploads = Uploads(
        data_root=tmp_path / "raw", staging_dir=tmp_path / "staging", max_bytes=1 << 30
    )
    size = MAX_CHUNK_BYTES - 10
    chunks = [bytes([65 + i]) * (size + i) for i in range(8)]
    for trial in range(3):
        upload = await uploads.start(file_name=f"race{trial}.csv", total_bytes=1 << 28)
        answers = await asyncio.gather(
            *(uploads.write(upload.id, offset=0, data=chunk) for chunk in chunks)
        )
        # One chunk won; every writer is told the offset it left.
        [offset] = {answer.next_offset for answer in answers}
        part = tmp_path / "staging" / f"{upload.id}.part"
        assert part.read_bytes() == chunks[offset - size]


async def test_an_upload_resumes_after_the_service_restarts(database_url: str, data_dir: Path):
    content = bar_csv(500)
    async with backtest_service(database_url, data_dir) as stub:
        name = (
            await stub.StartUpload(
                pb.StartUploadRequest(file_name="r.csv", total_bytes=len(content))
            )
        ).upload.name
        await stub.UploadChunk(pb.UploadChunkRequest(name=name, offset=0, data=content[:5000]))
    async with backtest_service(database_url, data_dir) as stub:
        upload = (await stub.GetUpload(pb.GetUploadRequest(name=name))).upload
        assert (upload.next_offset, upload.complete, upload.file_name) == (5000, False, "r.csv")
        done = await send(stub, name, content, chunk=7000)
        assert done.complete
    assert (data_dir / "raw" / "uploads" / "r.csv").read_bytes() == content


async def test_uploads_over_the_cap_or_with_bad_names_are_refused_naming_the_field(
    database_url: str, data_dir: Path
):
    async with backtest_service(database_url, data_dir, upload_max_bytes=1000) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.StartUpload(pb.StartUploadRequest(file_name="big.csv", total_bytes=1001))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "upload cap of 1000 bytes" in field_violations(caught.value)["total_bytes"]

        for bad in ["../escape.csv", "a/b.csv", "..", ".hidden.csv", "x\x00.csv", "notes.exe", ""]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.StartUpload(pb.StartUploadRequest(file_name=bad, total_bytes=10))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            assert set(field_violations(caught.value)) == {"file_name"}, bad

        name = (
            await stub.StartUpload(pb.StartUploadRequest(file_name="ok.csv", total_bytes=10))
        ).upload.name
        for request, field in [
            (pb.UploadChunkRequest(name=name, offset=0, data=b"x" * 11), "data"),
            (pb.UploadChunkRequest(name=name, offset=0, data=b""), "data"),
            (pb.UploadChunkRequest(name=name, offset=-1, data=b"x"), "offset"),
            (pb.UploadChunkRequest(name="uploads/../x", offset=0, data=b"x"), "name"),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.UploadChunk(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert set(field_violations(caught.value)) == {field}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.UploadChunk(
                pb.UploadChunkRequest(name="uploads/unknown", offset=0, data=b"x")
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert not (data_dir / "escape.csv").exists()
        assert sorted(p.name for p in (data_dir / "upload-staging").iterdir()) == [
            name.removeprefix("uploads/") + ".json",
            name.removeprefix("uploads/") + ".part",
        ]


async def test_a_chunk_over_the_bound_is_refused(database_url: str, data_dir: Path):
    async with backtest_service(database_url, data_dir, upload_max_bytes=8 << 20) as stub:
        name = (
            await stub.StartUpload(pb.StartUploadRequest(file_name="c.csv", total_bytes=8 << 20))
        ).upload.name
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.UploadChunk(
                pb.UploadChunkRequest(name=name, offset=0, data=b"x" * (MAX_CHUNK_BYTES + 1))
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most" in field_violations(caught.value)["data"]


async def test_a_file_name_already_under_uploads_is_refused(database_url: str, data_dir: Path):
    (data_dir / "raw" / "uploads").mkdir(parents=True)
    (data_dir / "raw" / "uploads" / "taken.csv").write_text("ts,price,size\n")
    async with backtest_service(database_url, data_dir) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.StartUpload(pb.StartUploadRequest(file_name="taken.csv", total_bytes=5))
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_importable_files_are_paged_in_path_order_and_stay_inside_the_root(
    database_url: str, data_dir: Path, tmp_path: Path
):
    root = data_dir / "raw"
    (root / "fx").mkdir(parents=True)
    (root / "quotes.csv").write_text("ts,bid,ask\n1,1.1,1.2\n")
    (root / "fx" / "trades.csv").write_text("time,price,qty\n1,1.1,3\n")
    (root / "headerless.csv").write_text("1,1.1,1.2\n")
    (root / "notes.md").write_text("not data")
    (root / ".hidden.csv").write_text("ts,bid,ask\n")
    outside = tmp_path / "outside.csv"
    outside.write_text("ts,bid,ask\n")
    (root / "link.csv").symlink_to(outside)
    async with backtest_service(database_url, data_dir) as stub:
        seen: list[pb.ImportableFile] = []
        token = ""
        while True:
            page = await stub.ListImportableFiles(
                pb.ListImportableFilesRequest(page_size=1, page_token=token)
            )
            assert len(page.files) <= 1
            seen.extend(page.files)
            token = page.next_page_token
            if not token:
                break
    assert [(f.path, f.guessed_kind) for f in seen] == [
        ("fx/trades.csv", pb.DATA_KIND_TRADES),
        ("headerless.csv", pb.DATA_KIND_UNSPECIFIED),
        ("quotes.csv", pb.DATA_KIND_QUOTES),
    ]
