"""Browsing SCORM analytics: activities, their learners' summaries (read-only helpers for
the SCORM pages; the summaries themselves are written by `common.analytics.scorm`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from common.appdb import AppDB
from common.models.analytics import ScormSummary
from common.moodle import MoodleSource


@dataclass(frozen=True)
class ScormActivity:
    scormid: int
    courseid: int
    name: str


@dataclass
class ActivityFigures:
    learners: int = 0
    completed: int = 0
    passed: int = 0
    best_scores: float = 0.0
    scored: int = 0

    @property
    def average_best(self) -> float | None:
        return round(self.best_scores / self.scored, 1) if self.scored else None


def scorm_activities(
    source: MoodleSource, scorm_ids: set[int] | None, course_ids: set[int] | None
) -> list[ScormActivity]:
    """SCORM activities by id (None: all), in the allowed courses (None: all)."""
    scorm = source.tables.scorm
    query = select(scorm.c.id, scorm.c.course, scorm.c.name).order_by(scorm.c.course, scorm.c.id)
    if scorm_ids is not None:
        query = query.where(scorm.c.id.in_(sorted(scorm_ids)))
    with source.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [ScormActivity(int(r.id), int(r.course), str(r.name)) for r in rows
            if course_ids is None or int(r.course) in course_ids]  # fmt: skip


def scorm_summaries(
    appdb: AppDB, scorm_ids: list[int], users: set[int] | None
) -> list[ScormSummary]:
    """The stored per-learner summaries of these activities, for the allowed users (None: all)."""
    with appdb.transaction() as db:
        rows = db.scalars(
            select(ScormSummary)
            .where(ScormSummary.scormid.in_(scorm_ids))
            .order_by(ScormSummary.scormid, ScormSummary.userid)
        ).all()
        db.expunge_all()
    return [r for r in rows if users is None or r.userid in users]
