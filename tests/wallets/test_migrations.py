"""The wallet service's migrations: reports survive the re-keying, the models match the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from tapedeck_common.database import session_factory
from tapedeck_common.migrations import downgrade_to, upgrade_to_head
from tapedeck_wallets.models import Base, UtcDateTime
from tapedeck_wallets.reconciliations import repository
from tapedeck_wallets.reconciliations.domain import ReconciliationState, WalletStatus
from tapedeck_wallets.server import MIGRATIONS, SERVICE

WHEN = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
# Bound as the models store a time (sqlite3's own datetime adapter is deprecated since 3.12).
STORED_WHEN = bindparam("when", type_=UtcDateTime())


async def _seed_report_before_0004(connection) -> None:
    # Rows as the 0003 schema held them, serial ids included.
    await connection.execute(
        text(
            "INSERT INTO reconciliations (id, state, wallet_ids, threshold,"
            " adopt_exchange_balances, max_cache_age_seconds, matched_count, mismatched_count,"
            " error_count, requested_by, owner, heartbeat_time, create_time, end_time,"
            " error_message) VALUES ('r1', 'succeeded', '[\"w1\", \"w2\"]', :zero, false, NULL,"
            " 1, 1, 0, 'ops', 'gone', :when, :when, :when, '')"
        ).bindparams(STORED_WHEN),
        {"zero": Decimal(0) if connection.dialect.name == "postgresql" else "0", "when": WHEN},
    )
    await connection.execute(
        text(
            "INSERT INTO reconciliation_results (reconciliation_id, seq, wallet_id,"
            " display_name, status, error_kind, error_message, adopted, fetch_time, from_cache)"
            " VALUES ('r1', 1, 'w1', 'desk one', 'matched', NULL, '', false, :when, true),"
            " ('r1', 2, 'w2', 'desk two', 'mismatched', NULL, '', true, :when, false)"
        ).bindparams(STORED_WHEN),
        {"when": WHEN},
    )
    await connection.execute(
        text(
            "INSERT INTO reconciliation_items (reconciliation_id, seq, asset, stored_total,"
            " exchange_total, difference, beyond_threshold) VALUES"
            " ('r1', 1, 'BTC', '1.5', '1.5', '0', false),"
            " ('r1', 2, 'ETH', '10.123456789012345678', '10', '-0.123456789012345678', true),"
            " ('r1', 2, 'USD', '0', '5', '5', true)"
        )
    )


async def test_rekeying_results_keeps_every_stored_report(database_url):
    engine = create_async_engine(database_url)
    try:
        await upgrade_to_head(engine, script_location=MIGRATIONS, service=SERVICE, target="0003")
        async with engine.begin() as connection:
            await _seed_report_before_0004(connection)
        await upgrade_to_head(engine, script_location=MIGRATIONS, service=SERVICE)
        async with session_factory(engine)() as session:
            report = await repository.get_reconciliation(session=session, reconciliation_id="r1")
        # And back: the previous schema holds the same rows.
        await downgrade_to(engine, script_location=MIGRATIONS, service=SERVICE, target="0003")
        async with engine.connect() as connection:
            items_before = (
                await connection.execute(text("SELECT count(*) FROM reconciliation_items"))
            ).scalar_one()
        await upgrade_to_head(engine, script_location=MIGRATIONS, service=SERVICE)
    finally:
        await engine.dispose()
    assert report.state is ReconciliationState.SUCCEEDED
    assert [(r.seq, r.wallet_id, r.status, r.adopted) for r in report.results] == [
        (1, "w1", WalletStatus.MATCHED, False),
        (2, "w2", WalletStatus.MISMATCHED, True),
    ]
    assert report.results[0].fetch_time == WHEN
    assert [
        (d.asset, d.stored_total, d.exchange_total, d.difference, d.beyond_threshold)
        for d in report.results[1].diffs
    ] == [
        (
            "ETH",
            Decimal("10.123456789012345678"),
            Decimal(10),
            Decimal("-0.123456789012345678"),
            True,
        ),
        ("USD", Decimal(0), Decimal(5), Decimal(5), True),
    ]
    assert items_before == 3


async def test_the_models_match_the_migrated_schema(database_url):
    engine = create_async_engine(database_url)
    try:
        await upgrade_to_head(engine, script_location=MIGRATIONS, service=SERVICE)
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": False}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    # The version table is Alembic's own, not a model.
    assert [d for d in differences if "alembic_version" not in str(d)] == []
