"""Trading sessions: per run_id summaries, their positions, and the summarizer's cursor.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("trader_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("instance_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("first_sequence", sa.BigInteger(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("first_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("type_counts", JSON, nullable=False),
        sa.Column("realized_pnl", JSON, nullable=False),
    )
    op.create_index("ix_sessions_first_sequence", "sessions", ["first_sequence"])
    op.create_index(
        "ix_sessions_trader_first_sequence", "sessions", ["trader_id", "first_sequence"]
    )
    op.create_table(
        "session_positions",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("position_id", sa.String(128), primary_key=True),
        sa.Column("instrument_id", sa.String(128), nullable=False),
        sa.Column("strategy_id", sa.String(128), nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("average_open_price", sa.String(64), nullable=False),
        sa.Column("realized", sa.String(64), nullable=False),
        sa.Column("closed_realized", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(32), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("opened_ns", sa.BigInteger(), nullable=False),
    )
    cursor = op.create_table(
        "session_summary_cursor",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
    )
    # Summaries start from the first event: existing stores are summarized after the upgrade.
    op.bulk_insert(cursor, [{"name": "sessions", "sequence": 0}])


def downgrade() -> None:
    op.drop_table("session_summary_cursor")
    op.drop_table("session_positions")
    op.drop_table("sessions")
