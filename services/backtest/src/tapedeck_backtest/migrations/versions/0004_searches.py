"""Search sweeps: the sampler spec of a sweep and what the sampler stored with each trial.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("search_json", sa.Text(), nullable=True))
    with op.batch_alter_table("sweep_runs") as batch:
        batch.add_column(
            sa.Column("trial_attrs_json", sa.Text(), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("sweep_runs") as batch:
        batch.drop_column("trial_attrs_json")
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("search_json")
