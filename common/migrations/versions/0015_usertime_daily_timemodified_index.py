"""usertime daily: index on (timemodified, userid): the learners whose rows were written since

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 22:50:00
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_manireports_usertime_daily_written",
        "manireports_usertime_daily",
        ["timemodified", "userid"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_manireports_usertime_daily_written", table_name="manireports_usertime_daily")
