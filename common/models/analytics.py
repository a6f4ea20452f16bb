"""App DB models: analytics (time on task, SCORM summaries, caches, at-risk learners).

Everything here is derived by the aggregator from the Moodle DB or from heartbeats and can be
rebuilt; only at-risk rules and acknowledgements are entered by people.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow

# JSON documents can outgrow MariaDB's TEXT (64 KB).
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class UsertimeSession(Base):
    """One stretch of continuous activity of a user in a course (and activity, `cmid`; 0 for
    course-level pages). `estimated` sessions come from the Moodle log, the others from
    heartbeats. A session is the span from its first to its last beat (or log event); a gap
    longer than the session timeout starts a new one."""

    __tablename__ = "manireports_usertime_sessions"
    __table_args__ = (
        UniqueConstraint("userid", "courseid", "cmid", "estimated", "sessionstart"),
        Index("ix_manireports_usertime_sessions_course_start", "courseid", "sessionstart"),
        # Covering the window of sessions new activity merges into (`timelines`).
        Index(
            "ix_manireports_usertime_sessions_window",
            "lastbeat",
            "estimated",
            "sessionstart",
            "userid",
            "courseid",
            "cmid",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int] = mapped_column(BigInteger)
    courseid: Mapped[int] = mapped_column(BigInteger)
    cmid: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    sessionstart: Mapped[datetime] = mapped_column(UTCDateTime)
    lastbeat: Mapped[datetime] = mapped_column(UTCDateTime)
    duration: Mapped[int] = mapped_column(Integer, default=0)  # seconds: lastbeat - sessionstart


class UsertimeDaily(Base):
    """Seconds a user spent in a course on one UTC date. A row exists for every date with
    activity, even when its seconds are 0 (a single click), so it also counts active days."""

    __tablename__ = "manireports_usertime_daily"
    __table_args__ = (
        UniqueConstraint("userid", "courseid", "date", "estimated"),
        # Covering the incremental refreshes' reads: the learners and dates with rows
        # written since a refresh, and the figures of a range of dates.
        Index("ix_manireports_usertime_daily_write_dates", "writeseq", "userid", "date"),
        Index(
            "ix_manireports_usertime_daily_date_figures",
            "date",
            "userid",
            "courseid",
            "estimated",
            "seconds",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int] = mapped_column(BigInteger)
    courseid: Mapped[int] = mapped_column(BigInteger, index=True)
    date: Mapped[date] = mapped_column(Date)
    seconds: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Which write last changed the row (`state.next_daily_write`): readers ask for the rows
    # written after the last write they had seen, exactly, whatever the clocks say.
    writeseq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class AnalyticsState(Base):
    """High-water marks of the incremental jobs (last log id read, last SCORM track time)."""

    __tablename__ = "manireports_analytics_state"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ScormSummary(Base):
    """One learner's figures in one SCORM activity, over all their attempts."""

    __tablename__ = "manireports_scorm_summary"
    __table_args__ = (UniqueConstraint("scormid", "userid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scormid: Mapped[int] = mapped_column(BigInteger)
    courseid: Mapped[int] = mapped_column(BigInteger, index=True)
    userid: Mapped[int] = mapped_column(BigInteger, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Of the last attempt: completed/incomplete/not attempted/unknown; passed/failed/unknown.
    completion_status: Mapped[str] = mapped_column(String(32), default="unknown")
    success_status: Mapped[str] = mapped_column(String(32), default="unknown")
    best_score: Mapped[float | None] = mapped_column(Float)
    has_suspend_data: Mapped[bool] = mapped_column(Boolean, default=False)
    interactions: Mapped[int] = mapped_column(Integer, default=0)
    total_time_s: Mapped[int] = mapped_column(Integer, default=0)
    avg_attempt_time_s: Mapped[int] = mapped_column(Integer, default=0)
    lasttracked: Mapped[int] = mapped_column(BigInteger, default=0)  # Moodle timemodified
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CacheSummary(Base):
    """A pre-computed JSON document a dashboard reads instead of querying the Moodle DB."""

    __tablename__ = "manireports_cache_summary"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # 191 characters: the longest utf8mb4 string a MariaDB unique index takes on old formats.
    cachekey: Mapped[str] = mapped_column(String(191), unique=True)
    companyid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    payload: Mapped[str] = mapped_column(LongText)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    compute_ms: Mapped[int] = mapped_column(Integer, default=0)


class Engagement(Base):
    """Active days and time of a learner in a course over the last 7 and 30 days."""

    __tablename__ = "manireports_engagement"
    __table_args__ = (UniqueConstraint("userid", "courseid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int] = mapped_column(BigInteger)
    courseid: Mapped[int] = mapped_column(BigInteger, index=True)
    active_days_7: Mapped[int] = mapped_column(Integer, default=0)
    active_days_30: Mapped[int] = mapped_column(Integer, default=0)
    seconds_7: Mapped[int] = mapped_column(Integer, default=0)
    seconds_30: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    xapi_statements_30: Mapped[int | None] = mapped_column(Integer)
    video_seconds_30: Mapped[int | None] = mapped_column(Integer)
    lastactive: Mapped[date | None] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RiskRule(Base):
    """One at-risk rule set by an admin: a factor, its threshold and its weight in the score.
    `companyid` NULL applies site-wide; a company's own rule of the same kind replaces it."""

    __tablename__ = "manireports_risk_rules"
    __table_args__ = (UniqueConstraint("companyid", "ruletype"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    companyid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    ruletype: Mapped[str] = mapped_column(String(32))
    threshold: Mapped[float] = mapped_column(Float)
    weight: Mapped[int] = mapped_column(Integer, default=25)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    modifiedby: Mapped[int | None] = mapped_column(BigInteger)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RiskScore(Base):
    """A learner's 0-100 risk in one course with the factors that made it."""

    __tablename__ = "manireports_risk_scores"
    __table_args__ = (
        UniqueConstraint("userid", "courseid"),
        Index("ix_manireports_risk_scores_flagged_score", "flagged", "score"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int] = mapped_column(BigInteger)
    courseid: Mapped[int] = mapped_column(BigInteger, index=True)
    score: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    factors: Mapped[str] = mapped_column(Text)  # JSON list of {rule, value, threshold, points}
    lastactivity: Mapped[int | None] = mapped_column(BigInteger)  # Unix seconds, from Moodle
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Since when the current flag stands (NULL while not flagged). A flag is notified once:
    # it needs an email while `notified_at` is older than this and no one acknowledged it since.
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A digest of the figures above (`risk.figures_digest`): a run compares it to decide
    # whether a row changed, rather than reading every row's factors back.
    digest: Mapped[int | None] = mapped_column(BigInteger)


class RiskAck(Base):
    """A manager's acknowledgement of a flagged learner, with their note."""

    __tablename__ = "manireports_risk_acks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int] = mapped_column(BigInteger, index=True)
    courseid: Mapped[int] = mapped_column(BigInteger, index=True)
    score: Mapped[int] = mapped_column(Integer)
    ackedby: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
