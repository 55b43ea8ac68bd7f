"""Reconciliation results and items keyed by what identifies them, without surrogate ids.

A result is (reconciliation_id, seq) and an item (reconciliation_id, seq, asset): the primary
keys replace serial ids that nothing read and the indexes beside them. Items lose their foreign
key to results: the job's only writer stores a batch's results and items in one transaction,
and PostgreSQL's per-row check cost more than the insert itself (300 items: 2.7 ms of 3.4 ms).
Results keep theirs to the report, so deleting a report still removes its results.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_RESULT_COLUMNS = (
    "reconciliation_id, seq, wallet_id, display_name, status, error_kind, error_message,"
    " adopted, fetch_time, from_cache"
)
_ITEM_COLUMNS = (
    "reconciliation_id, seq, asset, stored_total, exchange_total, difference, beyond_threshold"
)


def _amount() -> sa.types.TypeEngine:
    # As in 0002: SQLite keeps exact amounts as text.
    return sa.String(64) if op.get_bind().dialect.name == "sqlite" else sa.Numeric(38, 18)


def _result_columns() -> list[sa.Column]:
    return [
        sa.Column(
            "reconciliation_id",
            sa.String(64),
            sa.ForeignKey(
                "reconciliations.id",
                ondelete="CASCADE",
                name="fk_reconciliation_results_reconciliation",
            ),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("wallet_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_kind", sa.String(16), nullable=True),
        sa.Column("error_message", sa.Text, nullable=False),
        sa.Column("adopted", sa.Boolean, nullable=False),
        sa.Column("fetch_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("from_cache", sa.Boolean, nullable=False),
    ]


def _item_columns() -> list[sa.Column]:
    amount = _amount()
    return [
        sa.Column("reconciliation_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("stored_total", amount, nullable=False),
        sa.Column("exchange_total", amount, nullable=False),
        sa.Column("difference", amount, nullable=False),
        sa.Column("beyond_threshold", sa.Boolean, nullable=False),
    ]


def _copy(source: str, target: str, columns: str) -> None:
    op.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {source}")


def _swap(*, results: str, items: str) -> None:
    # New tables are filled first, then replace the old ones: the same steps on SQLite (which
    # cannot change constraints in place) and PostgreSQL.
    _copy("reconciliation_results", results, _RESULT_COLUMNS)
    _copy("reconciliation_items", items, _ITEM_COLUMNS)
    op.drop_table("reconciliation_items")
    op.drop_table("reconciliation_results")
    op.rename_table(results, "reconciliation_results")
    op.rename_table(items, "reconciliation_items")


def upgrade() -> None:
    op.create_table(
        "reconciliation_results_keyed",
        *_result_columns(),
        sa.PrimaryKeyConstraint("reconciliation_id", "seq", name="pk_reconciliation_results"),
        sa.UniqueConstraint(
            "reconciliation_id", "wallet_id", name="uq_reconciliation_results_wallet"
        ),
    )
    op.create_table(
        "reconciliation_items_keyed",
        *_item_columns(),
        sa.PrimaryKeyConstraint(
            "reconciliation_id", "seq", "asset", name="pk_reconciliation_items"
        ),
    )
    _swap(results="reconciliation_results_keyed", items="reconciliation_items_keyed")


def downgrade() -> None:
    op.create_table(
        "reconciliation_results_serial",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *_result_columns(),
        sa.UniqueConstraint("reconciliation_id", "seq"),
        sa.UniqueConstraint("reconciliation_id", "wallet_id"),
    )
    op.create_table(
        "reconciliation_items_serial",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *_item_columns(),
        sa.ForeignKeyConstraint(
            ["reconciliation_id", "seq"],
            ["reconciliation_results_serial.reconciliation_id", "reconciliation_results_serial.seq"],
            ondelete="CASCADE",
        ),
    )
    _swap(results="reconciliation_results_serial", items="reconciliation_items_serial")
    op.create_index(
        "ix_reconciliation_items_reconciliation_id_seq",
        "reconciliation_items",
        ["reconciliation_id", "seq"],
    )
