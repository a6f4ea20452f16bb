"""The Moodle side of the course mapping: the courses an admin picks from (by full or short
name) and the names of mapped courses, so pages and the CLI show names, not ids."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select

from common.moodle import MoodleSource

SITE_COURSE_ID = 1  # Moodle's front page is a course row; never a class


@dataclass(frozen=True)
class MoodleCourse:
    id: int
    fullname: str
    shortname: str

    @property
    def label(self) -> str:
        return f"{self.fullname} ({self.shortname})" if self.shortname else self.fullname


def course_choices(moodle: MoodleSource, search: str = "", limit: int = 200) -> list[MoodleCourse]:
    """Courses whose full or short name contains ``search`` (any case), by full name; at most
    ``limit`` (callers ask for one more to know there are more)."""
    course = moodle.tables.course
    query = select(course.c.id, course.c.fullname, course.c.shortname).where(
        course.c.id != SITE_COURSE_ID
    )
    term = search.strip().lower()
    if term:
        like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                func.lower(course.c.fullname).like(like, escape="\\"),
                func.lower(course.c.shortname).like(like, escape="\\"),
            )
        )
    query = query.order_by(course.c.fullname, course.c.id).limit(limit)
    with moodle.engine.connect() as conn:
        return [
            MoodleCourse(int(r.id), str(r.fullname), str(r.shortname or ""))
            for r in conn.execute(query)
        ]


def courses_by_id(moodle: MoodleSource, course_ids: set[int]) -> dict[int, MoodleCourse]:
    if not course_ids:
        return {}
    course = moodle.tables.course
    query = select(course.c.id, course.c.fullname, course.c.shortname).where(
        course.c.id.in_(sorted(course_ids))
    )
    with moodle.engine.connect() as conn:
        return {
            int(r.id): MoodleCourse(int(r.id), str(r.fullname), str(r.shortname or ""))
            for r in conn.execute(query)
        }
