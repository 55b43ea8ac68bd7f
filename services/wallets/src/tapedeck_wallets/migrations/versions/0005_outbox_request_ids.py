"""Outbox rows keep the id of the request that published them, sent on with the delivery.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("wallets_live_outbox", sa.Column("request_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wallets_live_outbox") as table:
        table.drop_column("request_id")
