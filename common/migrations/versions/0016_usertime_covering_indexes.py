"""usertime: covering indexes for the incremental pre-aggregation's reads

Each replaces an index that led with the same columns, so no query loses its index:

- sessions (lastbeat, estimated, sessionstart, userid, courseid, cmid) for the window of
  sessions a new day's activity merges into (it was the lastbeat index plus a row lookup per
  session);
- daily (date, userid, courseid, estimated, seconds) for the figures of a range of dates (the
  30-day engagement pass, the dashboard's per-date series), replacing (date, userid);
- daily (timemodified, userid, date) for the learners and the dates with rows written since
  a refresh, replacing (timemodified, userid).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 03:00:00
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SESSIONS = "manireports_usertime_sessions"
DAILY = "manireports_usertime_daily"
REPLACED = [
    # (table, old index, its columns, new index, its columns)
    (SESSIONS, "ix_manireports_usertime_sessions_lastbeat", ["lastbeat"],
     "ix_manireports_usertime_sessions_window",
     ["lastbeat", "estimated", "sessionstart", "userid", "courseid", "cmid"]),
    (DAILY, "ix_manireports_usertime_daily_date_userid", ["date", "userid"],
     "ix_manireports_usertime_daily_date_figures",
     ["date", "userid", "courseid", "estimated", "seconds"]),
    (DAILY, "ix_manireports_usertime_daily_written", ["timemodified", "userid"],
     "ix_manireports_usertime_daily_written_dates", ["timemodified", "userid", "date"]),
]  # fmt: skip


def upgrade() -> None:
    for table, old, _, new, columns in REPLACED:
        op.create_index(new, table, columns)
        op.drop_index(old, table_name=table)


def downgrade() -> None:
    for table, old, old_columns, new, _ in REPLACED:
        op.create_index(old, table, old_columns)
        op.drop_index(new, table_name=table)
