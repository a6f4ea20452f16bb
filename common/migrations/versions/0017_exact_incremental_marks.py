"""Exact marks for the incremental pre-aggregation

- usertime_daily.writeseq: the number of the write that last changed a row. Each write of
  daily rows takes the next number from the counter `usertime_daily.writes` (created here at
  1) and holds it until it commits, so the refreshes reading the table (engagement, the
  dashboard series) ask exactly for the rows written after the last number they saw, instead
  of re-reading the rows stamped in a margin of seconds before their last run. The index on
  (timemodified, userid, date) those reads used becomes (writeseq, userid, date).
- risk_scores.digest: a digest of a stored score's figures, so a scoring run compares digests
  rather than reading every row's factors back.

The refreshes' old time-based marks are dropped: their first run after this one recomputes
in full, and numbers the rows from then on.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 07:00:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

DAILY = "manireports_usertime_daily"
STATE = "manireports_analytics_state"
OLD_MARKS = ("engagement.daily_seen_ms", "caches.daily_seen_ms")


def upgrade() -> None:
    op.add_column(DAILY, sa.Column("writeseq", sa.BigInteger(), nullable=False,
                                   server_default="0"))  # fmt: skip
    op.create_index("ix_manireports_usertime_daily_write_dates", DAILY,
                    ["writeseq", "userid", "date"])  # fmt: skip
    op.drop_index("ix_manireports_usertime_daily_written_dates", table_name=DAILY)
    op.add_column("manireports_risk_scores", sa.Column("digest", sa.BigInteger(), nullable=True))
    state = sa.table(STATE, sa.column("name", sa.String), sa.column("value", sa.BigInteger),
                     sa.column("timemodified", sa.DateTime))  # fmt: skip
    op.execute(state.delete().where(state.c.name.in_(OLD_MARKS)))
    op.bulk_insert(state, [{"name": "usertime_daily.writes", "value": 1,
                            "timemodified": datetime.now(UTC).replace(tzinfo=None)}])  # fmt: skip


def downgrade() -> None:
    state = sa.table(STATE, sa.column("name", sa.String))
    op.execute(state.delete().where(state.c.name == "usertime_daily.writes"))
    op.drop_column("manireports_risk_scores", "digest")
    op.create_index("ix_manireports_usertime_daily_written_dates", DAILY,
                    ["timemodified", "userid", "date"])  # fmt: skip
    op.drop_index("ix_manireports_usertime_daily_write_dates", table_name=DAILY)
    op.drop_column(DAILY, "writeseq")
