"""Bar conventions: what a bars dataset's source timestamps named; datasets named by row labels.

Bars imported before this revision took each timestamp as the bar's close, and stay so. A
dataset's start and end now name its first and last rows' labels (a bar's open), so existing
bars datasets move back one bar (one minute); their catalog rows stay at their close.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BAR_NS = 60_000_000_000


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("bar_convention", sa.String(8), nullable=True))
    op.execute(
        "UPDATE datasets SET bar_convention = 'close', "
        f"start_ns = start_ns - {BAR_NS}, end_ns = end_ns - {BAR_NS} WHERE kind = 'bars'"
    )


def downgrade() -> None:
    op.execute(
        f"UPDATE datasets SET start_ns = start_ns + {BAR_NS}, end_ns = end_ns + {BAR_NS} "
        "WHERE kind = 'bars'"
    )
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("bar_convention")
