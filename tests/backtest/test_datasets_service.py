"""ImportDataset, GetDataset and ListDatasets through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck_backtest import server
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_dev.synth import demo_ticks, write_ticks
from tests.backtest.reference import BTCUSDT, REAL
from tests.support import eventually, field_violations, missing_dependency

BTC_PERP = backtest_pb2.Instrument(
    instrument_id="BTCUSDT-PERP.BINANCE",
    kind=backtest_pb2.INSTRUMENT_KIND_PERPETUAL,
    base_currency="BTC",
    quote_currency="USDT",
    price_precision=1,
    size_precision=4,
    maker_fee="0.0002",
    taker_fee="0.0004",
)
EURUSD = backtest_pb2.Instrument(
    instrument_id="EUR/USD.SIM",
    kind=backtest_pb2.INSTRUMENT_KIND_FX,
    base_currency="EUR",
    quote_currency="USD",
    price_precision=5,
    size_precision=0,
    maker_fee="0.00002",
    taker_fee="0.00002",
)
GBPUSD = backtest_pb2.Instrument(
    instrument_id="GBP/USD.SIM",
    kind=backtest_pb2.INSTRUMENT_KIND_FX,
    base_currency="GBP",
    quote_currency="USD",
    price_precision=5,
    size_precision=0,
)

# (file, instrument, kind, rows): every file in the shared real data set.
REAL_FILES = [
    ("binance-btcusdt-trades.parquet", BTCUSDT, backtest_pb2.DATA_KIND_TRADES, 2001),
    ("binance-btcusdt-quotes.parquet", BTCUSDT, backtest_pb2.DATA_KIND_QUOTES, 451),
    ("btc-perp-20211231-20220201_1m.csv", BTC_PERP, backtest_pb2.DATA_KIND_BARS, 45031),
    ("quote_tick_data.csv", EURUSD, backtest_pb2.DATA_KIND_QUOTES, 9500),
    ("fxcm-gbpusd-m1-bid-2012.csv", GBPUSD, backtest_pb2.DATA_KIND_BARS, 30117),
    ("fxcm-gbpusd-m1-ask-2012.csv", GBPUSD, backtest_pb2.DATA_KIND_BARS, 30117),
]


@dataclass
class Service:
    """A running backtest service and a stub to it."""

    stub: backtest_pb2_grpc.BacktestServiceStub
    root: Path
    catalog: Path


@pytest.fixture
def real_root() -> Path:
    if not (REAL / "binance-btcusdt-trades.parquet").exists():
        missing_dependency(f"the shared real data at {REAL}")
    return REAL


async def start_service(database_url: str, data_dir: Path, root: Path) -> AsyncIterator[Service]:
    catalog = data_dir / "catalog"
    # workers=0: these tests need the API only, not backtest worker processes.
    settings = BacktestSettings(
        database_url=database_url,
        port=0,
        data_dir=data_dir,
        data_root=root,
        catalog_dir=catalog,
        workers=0,
        live_address="",  # no live service: events stay in the outbox
    )
    app = await server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Service(backtest_pb2_grpc.BacktestServiceStub(channel), root, catalog)
    finally:
        await app.stop()


@pytest.fixture
async def real_service(
    database_url: str, data_dir: Path, real_root: Path
) -> AsyncIterator[Service]:
    async for service in start_service(database_url, data_dir, real_root):
        yield service


@pytest.fixture
async def scratch_service(database_url: str, data_dir: Path) -> AsyncIterator[Service]:
    root = data_dir / "raw"
    root.mkdir()
    async for service in start_service(database_url, data_dir, root):
        yield service


async def import_file(
    stub: backtest_pb2_grpc.BacktestServiceStub,
    path: str,
    instrument: backtest_pb2.Instrument,
    kind: backtest_pb2.DataKind.ValueType,
) -> list[backtest_pb2.ImportDatasetResponse]:
    request = backtest_pb2.ImportDatasetRequest(source_path=path, instrument=instrument, kind=kind)
    return [message async for message in stub.ImportDataset(request)]


def catalog_entries(catalog: Path) -> list[Path]:
    return sorted(p for p in catalog.rglob("*") if p.is_file()) if catalog.exists() else []


async def test_imports_every_real_file_and_the_catalog_reads_it_back(real_service: Service):
    names = []
    for file, instrument, kind, rows in REAL_FILES:
        messages = await import_file(real_service.stub, file, instrument, kind)
        last = messages[-1]
        assert last.WhichOneof("event") == "dataset"
        assert not last.already_imported
        assert all(m.WhichOneof("event") == "progress" for m in messages[:-1])
        assert messages[-2].progress.percent <= 100
        dataset = last.dataset
        assert dataset.row_count == rows, file
        assert dataset.kind == kind
        assert dataset.source_path == file
        assert len(dataset.content_hash) == 64
        assert dataset.start_time.ToNanoseconds() <= dataset.end_time.ToNanoseconds()
        assert dataset.instrument.instrument_id == instrument.instrument_id
        names.append(dataset.name)

        dataset_id = dataset.name.removeprefix("datasets/")
        catalog = ParquetDataCatalog(str(real_service.catalog / dataset_id))
        instrument_id = instrument.instrument_id
        if kind == backtest_pb2.DATA_KIND_TRADES:
            data = catalog.trade_ticks(instrument_ids=[instrument_id])
        elif kind == backtest_pb2.DATA_KIND_QUOTES:
            data = catalog.quote_ticks(instrument_ids=[instrument_id])
        else:
            data = catalog.bars(bar_types=[f"{instrument_id}-1-MINUTE-LAST-EXTERNAL"])
        assert len(data) == rows
        # Bars are stored at their close; a dataset names rows by their label (a bar's open).
        width = 60_000_000_000 if kind == backtest_pb2.DATA_KIND_BARS else 0
        assert data[0].ts_event - width == dataset.start_time.ToNanoseconds()
        assert data[-1].ts_event - width == dataset.end_time.ToNanoseconds()
        assert [str(i.id) for i in catalog.instruments()] == [instrument_id]

    got = await real_service.stub.GetDataset(backtest_pb2.GetDatasetRequest(name=names[0]))
    assert got.dataset.row_count == 2001
    assert got.dataset.instrument.taker_fee == "0.001"

    seen: list[str] = []
    token = ""
    while True:
        page = await real_service.stub.ListDatasets(
            backtest_pb2.ListDatasetsRequest(page_size=4, page_token=token)
        )
        seen += [d.name for d in page.datasets]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(names))
    only = await real_service.stub.ListDatasets(
        backtest_pb2.ListDatasetsRequest(instrument_id="GBP/USD.SIM")
    )
    assert len(only.datasets) == 2


async def test_the_same_file_again_does_no_work(real_service: Service):
    file, instrument, kind, _ = REAL_FILES[2]
    first = (await import_file(real_service.stub, file, instrument, kind))[-1]
    files_before = catalog_entries(real_service.catalog)
    again = await import_file(real_service.stub, file, instrument, kind)
    assert len(again) == 1
    assert again[0].already_imported
    assert again[0].dataset == first.dataset
    assert catalog_entries(real_service.catalog) == files_before


async def test_a_dataset_whose_catalog_was_deleted_is_imported_again(scratch_service: Service):
    (scratch_service.root / "a.csv").write_text("ts,price,size\n1610064000000,100.5,1.25\n")
    kind = backtest_pb2.DATA_KIND_TRADES
    first = (await import_file(scratch_service.stub, "a.csv", BTCUSDT, kind))[-1]
    shutil.rmtree(scratch_service.catalog / first.dataset.name.removeprefix("datasets/"))
    again = (await import_file(scratch_service.stub, "a.csv", BTCUSDT, kind))[-1]
    assert not again.already_imported
    assert again.dataset.name != first.dataset.name
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await scratch_service.stub.GetDataset(
            backtest_pb2.GetDatasetRequest(name=first.dataset.name)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_copy_of_an_imported_file_is_recognised_by_its_content(scratch_service: Service):
    (scratch_service.root / "a.csv").write_text(
        "ts,price,size,side\n1610064000000,100.5,1.25,BUY\n1610064001000,100.75,2,SELL\n"
    )
    shutil.copy(scratch_service.root / "a.csv", scratch_service.root / "b.csv")
    kind = backtest_pb2.DATA_KIND_TRADES
    first = (await import_file(scratch_service.stub, "a.csv", BTCUSDT, kind))[-1]
    second = (await import_file(scratch_service.stub, "b.csv", BTCUSDT, kind))[-1]
    assert second.already_imported
    assert second.dataset.name == first.dataset.name
    other = (await import_file(scratch_service.stub, "b.csv", BTC_PERP, kind))[-1]
    assert not other.already_imported  # same bytes, another instrument: another dataset


@pytest.mark.parametrize(
    "path", ["../outside.csv", "sub/../../outside.csv", "/etc/passwd", "link.csv", "dirlink/x.csv"]
)
async def test_paths_outside_the_data_root_are_refused(scratch_service: Service, path: str):
    outside = scratch_service.root.parent / "outside.csv"
    outside.write_text("ts,price,size\n1,2,3\n")
    (scratch_service.root / "sub").mkdir()
    (scratch_service.root / "link.csv").symlink_to(outside)
    (scratch_service.root / "dirlink").symlink_to(scratch_service.root.parent)
    (scratch_service.root.parent / "x.csv").write_text("ts,price,size\n1,2,3\n")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_file(scratch_service.stub, path, BTCUSDT, backtest_pb2.DATA_KIND_TRADES)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "source_path" in field_violations(caught.value)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("a" * 300 + ".csv", "has a name longer than 255 bytes"),
        ("a/" * 2100 + "x.csv", "is longer than 4096 characters"),
    ],
)
async def test_a_path_too_long_to_name_a_file_is_refused_briefly(
    scratch_service: Service, path: str, why: str
):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_file(scratch_service.stub, path, BTCUSDT, backtest_pb2.DATA_KIND_TRADES)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {"source_path": why}


# 2**63 itself, and milliseconds that overflow only once scaled to nanoseconds (year 2264).
@pytest.mark.parametrize("far", ["9223372036854775808", "9300000000000000"])
async def test_timestamps_past_int64_are_reported_with_their_row(
    scratch_service: Service, far: str
):
    (scratch_service.root / "far.csv").write_text(
        f"ts,price,size,side\n1610064000000,100.5,1.0,BUY\n{far},100.5,1.0,BUY\n"
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_file(scratch_service.stub, "far.csv", BTCUSDT, backtest_pb2.DATA_KIND_TRADES)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "far.csv line 3" in field_violations(caught.value)["source_path"]


async def test_a_missing_file_is_not_found(scratch_service: Service):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_file(scratch_service.stub, "nope.csv", BTCUSDT, backtest_pb2.DATA_KIND_TRADES)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_malformed_row_is_reported_with_line_and_column_and_leaves_nothing(
    scratch_service: Service,
):
    rows = [f"{1610064000000 + i},{100 + i}.5,1.0,BUY" for i in range(10)]
    rows[3] = "1610064000003,abc,1.0,BUY"  # line 5: the header is line 1
    (scratch_service.root / "bad.csv").write_text("ts,price,size,side\n" + "\n".join(rows) + "\n")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_file(scratch_service.stub, "bad.csv", BTCUSDT, backtest_pb2.DATA_KIND_TRADES)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    description = field_violations(caught.value)["source_path"]
    assert "bad.csv line 5" in description
    assert "column 'price'" in description
    assert "'abc'" in description
    assert [p for p in catalog_entries(scratch_service.catalog) if p.suffix == ".parquet"] == []
    listed = await scratch_service.stub.ListDatasets(backtest_pb2.ListDatasetsRequest())
    assert list(listed.datasets) == []


@pytest.mark.parametrize(
    ("body", "line", "column", "why"),
    [
        ("ts,price,size\n1610064000000,1,1\n1610064000001,2\n", 3, None, "expected 3 fields"),
        ("ts,price,size\n1610064000000,1,1\n1610063000000,1,1\n", 3, "ts", "back in time"),
        ("ts,price,size\n1610064000000,1,1\nlater,1,1\n", 3, "ts", "'later'"),
        ("ts,price,size\n1610064000000,1,-1\n", 2, "size", "must be positive"),
        ("ts,price,size\n1610064000000,1e15,1\n", 2, "price", "above NautilusTrader's limit"),
        ("ts,price,size\n1610064000000,1,1e14\n", 2, "size", "above NautilusTrader's limit"),
        ("ts,price,size,side\n1610064000000,1,1,HOLD\n", 2, "side", "'HOLD'"),
        ("ts,price\n1610064000000,1\n", 1, None, "missing required column"),
    ],
)
async def test_malformed_trade_files_name_the_line_and_column(
    scratch_service: Service, body: str, line: int, column: str | None, why: str
):
    (scratch_service.root / "t.csv").write_text(body)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_file(scratch_service.stub, "t.csv", BTCUSDT, backtest_pb2.DATA_KIND_TRADES)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    description = field_violations(caught.value)["source_path"]
    assert f"t.csv line {line}" in description
    if column is not None:
        assert f"column {column!r}" in description
    assert why in description


async def test_bad_requests_name_their_fields(scratch_service: Service):
    (scratch_service.root / "t.csv").write_text("ts,price,size\n1610064000000,1,1\n")
    instrument = backtest_pb2.Instrument(
        instrument_id="no-venue", base_currency="BTC", quote_currency="btc", price_precision=17
    )
    request = backtest_pb2.ImportDatasetRequest(source_path="t.csv", instrument=instrument)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in scratch_service.stub.ImportDataset(request):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = field_violations(caught.value)
    assert {
        "kind",
        "instrument.instrument_id",
        "instrument.quote_currency",
        "instrument.price_precision",
    } <= set(fields)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await scratch_service.stub.GetDataset(backtest_pb2.GetDatasetRequest(name="datasets/nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await scratch_service.stub.ListDatasets(
            backtest_pb2.ListDatasetsRequest(page_token="garbage")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_concurrent_imports_of_the_same_content_make_one_dataset(scratch_service: Service):
    rows = "\n".join(f"{1610064000000 + i},{100 + i % 7}.5,1.0,BUY" for i in range(20_000))
    (scratch_service.root / "a.csv").write_text("ts,price,size,side\n" + rows + "\n")
    shutil.copy(scratch_service.root / "a.csv", scratch_service.root / "b.csv")
    kind = backtest_pb2.DATA_KIND_TRADES
    first, second = await asyncio.gather(
        import_file(scratch_service.stub, "a.csv", BTCUSDT, kind),
        import_file(scratch_service.stub, "b.csv", BTCUSDT, kind),
    )
    assert first[-1].dataset.name == second[-1].dataset.name
    assert sorted([first[-1].already_imported, second[-1].already_imported]) == [False, True]
    listed = await scratch_service.stub.ListDatasets(backtest_pb2.ListDatasetsRequest())
    assert len(listed.datasets) == 1
    catalogs = [p for p in scratch_service.catalog.iterdir() if p.name != ".staging"]
    assert [p.name for p in catalogs] == [first[-1].dataset.name.removeprefix("datasets/")]


async def test_an_import_the_caller_abandons_leaves_nothing(scratch_service: Service):
    write_ticks(demo_ticks(400_000), scratch_service.root / "big.csv")
    request = backtest_pb2.ImportDatasetRequest(
        source_path="big.csv", instrument=BTCUSDT, kind=backtest_pb2.DATA_KIND_TRADES
    )
    call = scratch_service.stub.ImportDataset(request)
    while True:  # leave once rows are being written into the staging catalog
        message = await call.read()
        assert message.WhichOneof("event") == "progress"
        if message.progress.rows_read > 0:
            break
    call.cancel()

    async def all_or_nothing() -> bool:
        # On a loaded machine the import may have finished before the cancel arrived; then it
        # must be whole. Otherwise nothing may be left: no row, no catalog, no staging files.
        listed = await scratch_service.stub.ListDatasets(backtest_pb2.ListDatasetsRequest())
        staging = scratch_service.catalog / ".staging"
        staged = [p for p in staging.rglob("*") if p.is_file()] if staging.exists() else []
        published = (
            [p.name for p in scratch_service.catalog.iterdir() if p.name != ".staging"]
            if scratch_service.catalog.exists()
            else []
        )
        ids = [d.name.removeprefix("datasets/") for d in listed.datasets]
        return not staged and published == ids and len(ids) <= 1

    await eventually(all_or_nothing, timeout=30, message="the abandoned import to clean up")


async def test_a_column_mapping_reads_other_layouts(scratch_service: Service):
    (scratch_service.root / "named.csv").write_text(
        "when,px,amt,who\n1610064000000,100.5,1.25,BUY\n1610064001000,100.75,2,SELL\n"
    )
    (scratch_service.root / "bare.csv").write_text(
        "x,1610064000000,7.5,1\nx,1610064001000,7.25,2\n"
    )
    kind = backtest_pb2.DATA_KIND_TRADES
    named = backtest_pb2.ImportDatasetRequest(
        source_path="named.csv",
        instrument=BTCUSDT,
        kind=kind,
        column_mapping={"ts": "when", "price": "px", "size": "amt", "side": "who"},
    )
    messages = [m async for m in scratch_service.stub.ImportDataset(named)]
    assert messages[-1].dataset.row_count == 2
    bare = backtest_pb2.ImportDatasetRequest(
        source_path="bare.csv",
        instrument=BTCUSDT,
        kind=kind,
        column_mapping={"ts": "2", "price": "3", "size": "4"},
    )
    messages = [m async for m in scratch_service.stub.ImportDataset(bare)]
    dataset = messages[-1].dataset
    ticks = ParquetDataCatalog(
        str(scratch_service.catalog / dataset.name.removeprefix("datasets/"))
    ).trade_ticks(instrument_ids=[BTCUSDT.instrument_id])
    assert [t.price.as_double() for t in ticks] == [7.5, 7.25]

    wrong = backtest_pb2.ImportDatasetRequest(
        source_path="named.csv",
        instrument=BTCUSDT,
        kind=kind,
        column_mapping={"ts": "when", "bid": "px", "price": "2"},
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in scratch_service.stub.ImportDataset(wrong):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"column_mapping[bid]", "column_mapping"} <= set(field_violations(caught.value))

    missing = backtest_pb2.ImportDatasetRequest(
        source_path="named.csv", instrument=BTCUSDT, kind=kind, column_mapping={"ts": "nope"}
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in scratch_service.stub.ImportDataset(missing):
            pass
    description = field_violations(caught.value)["source_path"]
    assert "named.csv line 1, column 'nope': is not a column of the file" in description
