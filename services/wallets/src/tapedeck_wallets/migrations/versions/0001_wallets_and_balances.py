"""Wallets and their balances.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False, unique=True),
        sa.Column("exchange", sa.String(64), nullable=False, index=True),
        sa.Column("account_ref", sa.String(200), nullable=False),
        sa.Column("credentials_ref", sa.String(200), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "balances",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "wallet_id",
            sa.String(64),
            sa.ForeignKey("wallets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("total", sa.Numeric(38, 18), nullable=False),
        sa.Column("available", sa.Numeric(38, 18), nullable=False),
        sa.Column("hold", sa.Numeric(38, 18), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("wallet_id", "asset"),
    )


def downgrade() -> None:
    op.drop_table("balances")
    op.drop_table("wallets")
