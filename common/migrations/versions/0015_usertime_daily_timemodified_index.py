"""usertime daily: covering indexes for the engagement refresh's learners to recompute

Those whose rows were written since its last run (timemodified, userid) and those active on a
date that crossed a window edge (date, userid, replacing the index on date alone).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 22:50:00
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLE = "manireports_usertime_daily"


def upgrade() -> None:
    op.create_index("ix_manireports_usertime_daily_written", TABLE, ["timemodified", "userid"])
    op.create_index("ix_manireports_usertime_daily_date_userid", TABLE, ["date", "userid"])
    op.drop_index("ix_manireports_usertime_daily_date", table_name=TABLE)


def downgrade() -> None:
    op.create_index("ix_manireports_usertime_daily_date", TABLE, ["date"])
    op.drop_index("ix_manireports_usertime_daily_date_userid", table_name=TABLE)
    op.drop_index("ix_manireports_usertime_daily_written", table_name=TABLE)
