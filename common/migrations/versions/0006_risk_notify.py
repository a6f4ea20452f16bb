"""at-risk flags remember since when they stand, so a notification is sent once per flag

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import common.models.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("manireports_risk_scores", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("flagged_at", common.models.base.UTCDateTime(), nullable=True)
        )
    # Flags standing before this revision started no later than their last computation.
    scores = sa.table(
        "manireports_risk_scores",
        sa.column("flagged", sa.Boolean()),
        sa.column("computed_at", common.models.base.UTCDateTime()),
        sa.column("flagged_at", common.models.base.UTCDateTime()),
    )
    op.execute(
        scores.update().where(scores.c.flagged.is_(True)).values(flagged_at=scores.c.computed_at)
    )


def downgrade() -> None:
    with op.batch_alter_table("manireports_risk_scores", schema=None) as batch_op:
        batch_op.drop_column("flagged_at")
