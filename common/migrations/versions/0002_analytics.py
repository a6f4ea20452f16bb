"""analytics tables (time, SCORM, caches, at-risk)

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
import common.models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manireports_analytics_state",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("timemodified", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_analytics_state")),
        sa.UniqueConstraint("name", name=op.f("uq_manireports_analytics_state_name")),
    )
    op.create_table(
        "manireports_cache_summary",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("cachekey", sa.String(length=191), nullable=False),
        sa.Column("companyid", sa.BigInteger(), nullable=True),
        sa.Column(
            "payload",
            sa.Text()
            .with_variant(mysql.LONGTEXT(), "mariadb")
            .with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=False,
        ),
        sa.Column("computed_at", common.models.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", common.models.base.UTCDateTime(), nullable=False),
        sa.Column("compute_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_cache_summary")),
        sa.UniqueConstraint("cachekey", name=op.f("uq_manireports_cache_summary_cachekey")),
    )
    with op.batch_alter_table("manireports_cache_summary", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_cache_summary_companyid"), ["companyid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_cache_summary_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "manireports_engagement",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("courseid", sa.BigInteger(), nullable=False),
        sa.Column("active_days_7", sa.Integer(), nullable=False),
        sa.Column("active_days_30", sa.Integer(), nullable=False),
        sa.Column("seconds_7", sa.Integer(), nullable=False),
        sa.Column("seconds_30", sa.Integer(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("xapi_statements_30", sa.Integer(), nullable=True),
        sa.Column("video_seconds_30", sa.Integer(), nullable=True),
        sa.Column("lastactive", sa.Date(), nullable=True),
        sa.Column("computed_at", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_engagement")),
        sa.UniqueConstraint(
            "userid", "courseid", name=op.f("uq_manireports_engagement_userid_courseid")
        ),
    )
    with op.batch_alter_table("manireports_engagement", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_engagement_courseid"), ["courseid"], unique=False
        )
    op.create_table(
        "manireports_risk_acks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("courseid", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("ackedby", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("timecreated", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_risk_acks")),
    )
    with op.batch_alter_table("manireports_risk_acks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_risk_acks_courseid"), ["courseid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_risk_acks_userid"), ["userid"], unique=False
        )
    op.create_table(
        "manireports_risk_rules",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("companyid", sa.BigInteger(), nullable=True),
        sa.Column("ruletype", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("modifiedby", sa.BigInteger(), nullable=True),
        sa.Column("timemodified", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_risk_rules")),
        sa.UniqueConstraint(
            "companyid", "ruletype", name=op.f("uq_manireports_risk_rules_companyid_ruletype")
        ),
    )
    with op.batch_alter_table("manireports_risk_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_risk_rules_companyid"), ["companyid"], unique=False
        )
    op.create_table(
        "manireports_risk_scores",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("courseid", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("factors", sa.Text(), nullable=False),
        sa.Column("lastactivity", sa.BigInteger(), nullable=True),
        sa.Column("computed_at", common.models.base.UTCDateTime(), nullable=False),
        sa.Column("notified_at", common.models.base.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_risk_scores")),
        sa.UniqueConstraint(
            "userid", "courseid", name=op.f("uq_manireports_risk_scores_userid_courseid")
        ),
    )
    with op.batch_alter_table("manireports_risk_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_risk_scores_courseid"), ["courseid"], unique=False
        )
        batch_op.create_index(
            "ix_manireports_risk_scores_flagged_score", ["flagged", "score"], unique=False
        )
    op.create_table(
        "manireports_scorm_summary",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("scormid", sa.BigInteger(), nullable=False),
        sa.Column("courseid", sa.BigInteger(), nullable=False),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("completion_status", sa.String(length=32), nullable=False),
        sa.Column("success_status", sa.String(length=32), nullable=False),
        sa.Column("best_score", sa.Float(), nullable=True),
        sa.Column("has_suspend_data", sa.Boolean(), nullable=False),
        sa.Column("interactions", sa.Integer(), nullable=False),
        sa.Column("total_time_s", sa.Integer(), nullable=False),
        sa.Column("avg_attempt_time_s", sa.Integer(), nullable=False),
        sa.Column("lasttracked", sa.BigInteger(), nullable=False),
        sa.Column("timemodified", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_scorm_summary")),
        sa.UniqueConstraint(
            "scormid", "userid", name=op.f("uq_manireports_scorm_summary_scormid_userid")
        ),
    )
    with op.batch_alter_table("manireports_scorm_summary", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_scorm_summary_courseid"), ["courseid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_scorm_summary_userid"), ["userid"], unique=False
        )
    op.create_table(
        "manireports_usertime_daily",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("courseid", sa.BigInteger(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("timemodified", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_usertime_daily")),
        sa.UniqueConstraint(
            "userid",
            "courseid",
            "date",
            "estimated",
            name=op.f("uq_manireports_usertime_daily_userid_courseid_date_estimated"),
        ),
    )
    with op.batch_alter_table("manireports_usertime_daily", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_usertime_daily_courseid"), ["courseid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_usertime_daily_date"), ["date"], unique=False
        )
    op.create_table(
        "manireports_usertime_sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("courseid", sa.BigInteger(), nullable=False),
        sa.Column("cmid", sa.BigInteger(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("sessionstart", common.models.base.UTCDateTime(), nullable=False),
        sa.Column("lastbeat", common.models.base.UTCDateTime(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_usertime_sessions")),
        sa.UniqueConstraint(
            "userid",
            "courseid",
            "cmid",
            "estimated",
            "sessionstart",
            name=op.f(
                "uq_manireports_usertime_sessions_userid_courseid_cmid_estimated_sessionstart"
            ),
        ),
    )
    with op.batch_alter_table("manireports_usertime_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_manireports_usertime_sessions_course_start",
            ["courseid", "sessionstart"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_usertime_sessions_lastbeat"), ["lastbeat"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("manireports_usertime_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_usertime_sessions_lastbeat"))
        batch_op.drop_index("ix_manireports_usertime_sessions_course_start")
    op.drop_table("manireports_usertime_sessions")
    with op.batch_alter_table("manireports_usertime_daily", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_usertime_daily_date"))
        batch_op.drop_index(batch_op.f("ix_manireports_usertime_daily_courseid"))
    op.drop_table("manireports_usertime_daily")
    with op.batch_alter_table("manireports_scorm_summary", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_scorm_summary_userid"))
        batch_op.drop_index(batch_op.f("ix_manireports_scorm_summary_courseid"))
    op.drop_table("manireports_scorm_summary")
    with op.batch_alter_table("manireports_risk_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_manireports_risk_scores_flagged_score")
        batch_op.drop_index(batch_op.f("ix_manireports_risk_scores_courseid"))
    op.drop_table("manireports_risk_scores")
    with op.batch_alter_table("manireports_risk_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_risk_rules_companyid"))
    op.drop_table("manireports_risk_rules")
    with op.batch_alter_table("manireports_risk_acks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_risk_acks_userid"))
        batch_op.drop_index(batch_op.f("ix_manireports_risk_acks_courseid"))
    op.drop_table("manireports_risk_acks")
    with op.batch_alter_table("manireports_engagement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_engagement_courseid"))
    op.drop_table("manireports_engagement")
    with op.batch_alter_table("manireports_cache_summary", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_cache_summary_expires_at"))
        batch_op.drop_index(batch_op.f("ix_manireports_cache_summary_companyid"))
    op.drop_table("manireports_cache_summary")
    op.drop_table("manireports_analytics_state")
