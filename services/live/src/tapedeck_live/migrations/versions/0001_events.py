"""The append-only event store.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BLOCKED = sa.text("type = 'trade_blocked'")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "sequence",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("symbol", sa.String(64), nullable=False, server_default=""),
        sa.Column("reason", sa.String(128), nullable=False, server_default=""),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column(
            "append_time",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index("ix_events_type_sequence", "events", ["type", "sequence"])
    op.create_index("ix_events_run_sequence", "events", ["run_id", "sequence"])
    op.create_index("ix_events_symbol_sequence", "events", ["symbol", "sequence"])
    has_reason = sa.text("reason <> ''")
    op.create_index(
        "ix_events_reason_sequence",
        "events",
        ["reason", "sequence"],
        postgresql_where=has_reason,
        sqlite_where=has_reason,
    )
    op.create_index("ix_events_ts_sequence", "events", ["ts_ns", "sequence"])
    # Partial indexes for the trade_blocked view: only blocks pay for them on append.
    for name, columns in (
        ("ix_blocks_sequence", ["sequence"]),
        ("ix_blocks_reason_sequence", ["reason", "sequence"]),
        ("ix_blocks_run_sequence", ["run_id", "sequence"]),
        ("ix_blocks_symbol_sequence", ["symbol", "sequence"]),
    ):
        op.create_index(
            name,
            "events",
            columns,
            postgresql_where=BLOCKED,
            # Carrying reason makes the counts per reason an index-only scan.
            postgresql_include=[] if "reason" in columns else ["reason"],
            sqlite_where=BLOCKED,
        )


def downgrade() -> None:
    op.drop_table("events")
