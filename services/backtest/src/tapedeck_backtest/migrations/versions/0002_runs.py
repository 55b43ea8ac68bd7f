"""Backtest runs, sweeps and their grid points.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backtests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("spec_json", sa.Text, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False, index=True),
        sa.Column("dataset_id", sa.String(64), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sweep_id", sa.String(64), nullable=True, index=True),
        sa.Column("progress_json", sa.Text, nullable=True),
        sa.Column("stats_json", sa.Text, nullable=True),
        sa.Column("error_message", sa.Text, nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_version", sa.String(64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_backtests_state_create", "backtests", ["state", "create_time"])
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("base_spec_json", sa.Text, nullable=False),
        sa.Column("axes_json", sa.Text, nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("total_runs", sa.Integer, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "sweep_runs",
        sa.Column(
            "sweep_id",
            sa.String(64),
            sa.ForeignKey("sweeps.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column(
            "backtest_id", sa.String(64), sa.ForeignKey("backtests.id"), nullable=False, index=True
        ),
        sa.Column("parameters_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sweep_runs")
    op.drop_table("sweeps")
    op.drop_index("ix_backtests_state_create", table_name="backtests")
    op.drop_table("backtests")
