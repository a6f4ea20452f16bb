"""Browsing SCORM analytics within a tenant scope: activities, one activity by id, and the
learners' stored summaries (written by `common.analytics.scorm`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from common.appdb import AppDB
from common.models.analytics import ScormSummary
from common.moodle import MoodleSource
from common.tenancy import TenantScope, load_scoped, scoped


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


def scorm_activities(source: MoodleSource, scope: TenantScope) -> list[ScormActivity]:
    """The SCORM activities of the courses in scope."""
    scorm = source.tables.scorm
    query = select(scorm.c.id, scorm.c.course, scorm.c.name).order_by(scorm.c.course, scorm.c.id)
    with source.engine.connect() as conn:
        rows = conn.execute(scoped(query, scope, source)).all()
    return [ScormActivity(int(r.id), int(r.course), str(r.name)) for r in rows]


def load_scorm(source: MoodleSource, scormid: int, scope: TenantScope) -> ScormActivity:
    """One activity in scope; NotFound if there is none, TenantViolation if it is another's."""
    scorm = source.tables.scorm
    query = select(scorm.c.id, scorm.c.course, scorm.c.name).where(scorm.c.id == scormid)
    with source.engine.connect() as conn:
        row = load_scoped(lambda q: conn.execute(q).first(), query, scope, source,
                          what=f"SCORM activity {scormid}")  # fmt: skip
    return ScormActivity(int(row.id), int(row.course), str(row.name))


def scorm_summaries(
    appdb: AppDB,
    source: MoodleSource,
    scope: TenantScope,
    scorm_ids: list[int],
    userid: int | None = None,
) -> list[ScormSummary]:
    """The stored per-learner summaries of these activities (of one learner if given) that
    the scope may see."""
    query = (
        select(ScormSummary)
        .where(ScormSummary.scormid.in_(scorm_ids))
        .order_by(ScormSummary.scormid, ScormSummary.userid)
    )
    if userid is not None:
        query = query.where(ScormSummary.userid == userid)
    with appdb.transaction() as db:
        rows = list(db.scalars(scoped(query, scope, source)).all())
        db.expunge_all()
    return rows
