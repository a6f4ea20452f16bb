"""usertime daily: index on timemodified (the engagement refresh reads what was written since)

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
        op.f("ix_manireports_usertime_daily_timemodified"),
        "manireports_usertime_daily",
        ["timemodified"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_manireports_usertime_daily_timemodified"), table_name="manireports_usertime_daily"
    )
