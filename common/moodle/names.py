"""Display names of Moodle users and courses, for pages that list ids from the app DB."""

from __future__ import annotations

from sqlalchemy import select

from common.moodle.source import MoodleSource


def display_names(
    source: MoodleSource, user_ids: set[int], course_ids: set[int]
) -> tuple[dict[int, str], dict[int, str]]:
    t = source.tables
    people_query = select(t.user.c.id, t.user.c.firstname, t.user.c.lastname).where(
        t.user.c.id.in_(sorted(user_ids))
    )
    course_query = select(t.course.c.id, t.course.c.fullname).where(
        t.course.c.id.in_(sorted(course_ids))
    )
    with source.engine.connect() as conn:
        people = {int(r.id): f"{r.firstname} {r.lastname}" for r in conn.execute(people_query)}
        courses = {int(r.id): str(r.fullname) for r in conn.execute(course_query)}
    return people, courses
