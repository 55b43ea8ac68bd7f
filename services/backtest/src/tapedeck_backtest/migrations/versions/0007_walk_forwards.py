"""Walk-forward analyses and their folds.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "walk_forwards",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("base_spec_json", sa.Text(), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_walk_forwards_create_time", "walk_forwards", ["create_time"])
    op.create_table(
        "walk_forward_folds",
        sa.Column(
            "walk_forward_id",
            sa.String(64),
            sa.ForeignKey("walk_forwards.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("fold", sa.Integer(), primary_key=True),
        sa.Column("in_start_ns", sa.BigInteger(), nullable=False),
        sa.Column("in_end_ns", sa.BigInteger(), nullable=False),
        sa.Column("out_start_ns", sa.BigInteger(), nullable=False),
        sa.Column("out_end_ns", sa.BigInteger(), nullable=False),
        sa.Column("sweep_id", sa.String(64), sa.ForeignKey("sweeps.id"), nullable=False),
        sa.Column("out_run_id", sa.String(64), sa.ForeignKey("backtests.id"), nullable=True),
        sa.Column("error", sa.Text(), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("walk_forward_folds")
    op.drop_index("ix_walk_forwards_create_time", table_name="walk_forwards")
    op.drop_table("walk_forwards")
