"""Exact amounts on SQLite, and reconciliation reports with per-wallet, per-asset items.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _amount(dialect: str) -> sa.types.TypeEngine:
    # SQLite has no decimal type: NUMERIC affinity would round through a float, text does not.
    return sa.String(64) if dialect == "sqlite" else sa.Numeric(38, 18)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    amount = _amount(dialect)
    if dialect == "sqlite":
        with op.batch_alter_table("balances") as batch:
            for column in ("total", "available", "hold"):
                batch.alter_column(
                    column, type_=sa.String(64), existing_type=sa.Numeric(38, 18), nullable=False
                )
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("wallet_ids", sa.JSON, nullable=False),
        sa.Column("threshold", amount, nullable=False),
        sa.Column("adopt_exchange_balances", sa.Boolean, nullable=False),
        sa.Column("max_cache_age_seconds", sa.Float, nullable=True),
        sa.Column("matched_count", sa.Integer, nullable=False),
        sa.Column("mismatched_count", sa.Integer, nullable=False),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_message", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_reconciliations_create_time_id", "reconciliations", ["create_time", "id"]
    )
    op.create_index(
        "ix_reconciliations_state_heartbeat", "reconciliations", ["state", "heartbeat_time"]
    )
    op.create_table(
        "reconciliation_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "reconciliation_id",
            sa.String(64),
            sa.ForeignKey("reconciliations.id", ondelete="CASCADE"),
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
        sa.UniqueConstraint("reconciliation_id", "seq"),
        sa.UniqueConstraint("reconciliation_id", "wallet_id"),
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reconciliation_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("stored_total", amount, nullable=False),
        sa.Column("exchange_total", amount, nullable=False),
        sa.Column("difference", amount, nullable=False),
        sa.Column("beyond_threshold", sa.Boolean, nullable=False),
        # Keyed by (report, seq), known before insert, so results and items insert in bulk.
        sa.ForeignKeyConstraint(
            ["reconciliation_id", "seq"],
            ["reconciliation_results.reconciliation_id", "reconciliation_results.seq"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_reconciliation_items_reconciliation_id_seq",
        "reconciliation_items",
        ["reconciliation_id", "seq"],
    )


def downgrade() -> None:
    op.drop_table("reconciliation_items")
    op.drop_table("reconciliation_results")
    op.drop_table("reconciliations")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("balances") as batch:
            for column in ("total", "available", "hold"):
                batch.alter_column(
                    column, type_=sa.Numeric(38, 18), existing_type=sa.String(64), nullable=False
                )
