"""The backtest service's migrations: bars datasets imported before conventions keep their meaning."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck_backtest.datasets import repository
from tapedeck_backtest.datasets.domain import BarConvention
from tapedeck_backtest.server import MIGRATIONS, SERVICE
from tapedeck_common.database import session_factory
from tapedeck_common.migrations import downgrade_to, upgrade_to_head
from tests.backtest.reference import BTCUSDT_SPEC

MINUTE_NS = 60_000_000_000
FIRST_CLOSE, LAST_CLOSE = 1_328_054_460_000_000_000, 1_330_560_000_000_000_000
WHEN = bindparam("when", type_=DateTime(timezone=True))


async def test_bars_imported_before_0006_are_bar_close_and_named_by_their_open(database_url):
    engine = create_async_engine(database_url)
    try:
        await upgrade_to_head(engine, script_location=MIGRATIONS, service=SERVICE, target="0005")
        async with engine.begin() as connection:
            for dataset_id, kind in (("bars", "bars"), ("ticks", "trades")):
                await connection.execute(
                    text(
                        "INSERT INTO datasets (id, display_name, instrument_id, instrument_json,"
                        " kind, source_path, content_hash, import_key, request_key, source_size,"
                        " source_mtime_ns, row_count, start_ns, end_ns, size_bytes, create_time)"
                        " VALUES (:id, :id, 'BTCUSDT.BINANCE', :instrument, :kind, 'f.csv', 'h', :id, 'r',"
                        " 1, 1, 2, :start, :end, 1, :when)"
                    ).bindparams(WHEN),
                    {
                        "id": dataset_id,
                        "kind": kind,
                        "instrument": BTCUSDT_SPEC.to_json(),
                        "start": FIRST_CLOSE,
                        "end": LAST_CLOSE,
                        "when": datetime(2026, 12, 1, tzinfo=UTC),
                    },
                )
        await upgrade_to_head(engine, script_location=MIGRATIONS, service=SERVICE)
        async with engine.connect() as connection:
            rows = {
                row.id: (row.bar_convention, row.start_ns, row.end_ns)
                for row in await connection.execute(
                    text("SELECT id, bar_convention, start_ns, end_ns FROM datasets")
                )
            }
        assert rows == {
            "bars": ("close", FIRST_CLOSE - MINUTE_NS, LAST_CLOSE - MINUTE_NS),
            "ticks": (None, FIRST_CLOSE, LAST_CLOSE),
        }
        async with session_factory(engine)() as session:
            bars = await repository.get_dataset(session=session, dataset_id="bars")
        assert bars is not None
        assert bars.bar_convention is BarConvention.CLOSE
        await downgrade_to(engine, script_location=MIGRATIONS, service=SERVICE, target="0005")
        async with engine.connect() as connection:
            back = (
                await connection.execute(
                    text("SELECT start_ns, end_ns FROM datasets WHERE id = 'bars'")
                )
            ).one()
        assert tuple(back) == (FIRST_CLOSE, LAST_CLOSE)
    finally:
        await engine.dispose()
