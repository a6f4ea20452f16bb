"""Roster sync: each mapped Moodle course's active enrolments become its Classroom course's
students and teachers.

- Who: active enrolments (user_enrolments.status 0 through an enabled instance, not ended, user
  not deleted); a teacher is anyone holding `editingteacher` or `teacher` in the course context,
  everyone else a student.
- Their Google email: `common.identity.resolve.resolve(appdb, "moodle", user_id)` — the identity
  map only; someone unmapped is parked (listed with the error naming source and id) and picked
  up by the next sync after an import maps them.
- Changes: teachers missing from Classroom are added (a student promoted in Moodle is removed as
  a student first); students missing are added; people outside the Workspace domains get
  invitations (the client decides). Students on the Classroom roster who are no longer enrolled
  are removed — but not in a course with parked people (their Google accounts cannot be told
  apart from leavers), and teachers are never removed automatically (owners and co-teachers
  added in Classroom must stay).
- One failed call is recorded and the others go on; 409/404/quota handling is the client's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, or_, select

from common.appdb import AppDB
from common.classroom.client import ClassroomClient, ClassroomError
from common.identity.resolve import MappingMissing, resolve
from common.moodle import MoodleSource

MOODLE_SOURCE = "moodle"
COURSE_CONTEXT = 50
TEACHER_ROLES = ("editingteacher", "teacher")


@dataclass(frozen=True)
class Enrolled:
    user_id: int
    course_id: int
    teacher: bool


@dataclass
class SyncSummary:
    courses: int = 0
    added: int = 0
    invited: int = 0
    removed: int = 0
    unchanged: int = 0
    parked: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    removals_held: list[int] = field(default_factory=list)  # Moodle courses with parked people
    status: str = "ok"  # "ok", "errors" (some calls failed) or "skipped" (nothing to sync)
    skipped: str = ""  # why nothing was synced

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0


def enrolments(moodle: MoodleSource, course_ids: list[int], now: int) -> list[Enrolled]:
    """The active enrolments of ``course_ids``, one row per person and course."""
    t = moodle.tables
    e, ue, u = t.enrol, t.user_enrolments, t.user
    ctx, ra, role = t["context"], t["role_assignments"], t["role"]
    teacher = func.max(case((role.c.shortname.in_(TEACHER_ROLES), 1), else_=0)).label("teacher")
    query = (
        select(ue.c.userid, e.c.courseid, teacher)
        .join(e, e.c.id == ue.c.enrolid)
        .join(u, u.c.id == ue.c.userid)
        .outerjoin(ctx, (ctx.c.contextlevel == COURSE_CONTEXT) & (ctx.c.instanceid == e.c.courseid))
        .outerjoin(ra, (ra.c.contextid == ctx.c.id) & (ra.c.userid == ue.c.userid))
        .outerjoin(role, role.c.id == ra.c.roleid)
        .where(
            ue.c.status == 0,
            e.c.status == 0,
            u.c.deleted == 0,
            or_(ue.c.timeend == 0, ue.c.timeend > now),
            e.c.courseid.in_(course_ids),
        )
        .group_by(ue.c.userid, e.c.courseid)
        .order_by(e.c.courseid, ue.c.userid)
    )
    with moodle.engine.connect() as connection:
        rows = connection.execute(query).all()
    return [Enrolled(int(r.userid), int(r.courseid), bool(r.teacher)) for r in rows]


def sync_rosters(
    appdb: AppDB,
    moodle: MoodleSource,
    client: ClassroomClient,
    course_map: Mapping[int, str],
    *,
    now: float,
) -> SyncSummary:
    summary = SyncSummary()
    wanted: dict[int, tuple[set[str], set[str]]] = {m: (set(), set()) for m in course_map}
    emails: dict[int, str] = {}
    for person in enrolments(moodle, sorted(course_map), int(now)):
        if person.user_id not in emails:
            try:
                emails[person.user_id] = resolve(appdb, MOODLE_SOURCE, person.user_id).lower()
            except MappingMissing as exc:
                summary.parked.append(
                    {"source": MOODLE_SOURCE, "user_id": person.user_id,
                     "course_id": person.course_id, "error": str(exc)}
                )  # fmt: skip
                continue
        students, teachers = wanted[person.course_id]
        (teachers if person.teacher else students).add(emails[person.user_id])
    held = {p["course_id"] for p in summary.parked}
    for moodle_id, classroom_id in course_map.items():
        summary.courses += 1
        students, teachers = wanted[moodle_id]
        _sync_course(client, classroom_id, moodle_id, students, teachers,
                     moodle_id not in held, summary)  # fmt: skip
    summary.removals_held = sorted(held)
    summary.status = "errors" if summary.errors else "ok"
    return summary


def _sync_course(
    client: ClassroomClient,
    classroom_id: str,
    moodle_id: int,
    students: set[str],
    teachers: set[str],
    may_remove: bool,
    summary: SyncSummary,
) -> None:
    def attempt(call: str, email: str, *args: Any) -> None:
        method = getattr(client, call)
        try:
            outcome = method(classroom_id, email, *args)
        except ClassroomError as exc:
            summary.errors.append(
                {"course_id": moodle_id, "classroom_id": classroom_id, "email": email,
                 "call": call, "error": str(exc)}
            )  # fmt: skip
            return
        if outcome.action == "added":
            summary.added += 1
        elif outcome.action == "invited":
            summary.invited += 1
        elif outcome.action == "removed":
            summary.removed += 1
        else:
            summary.unchanged += 1

    try:
        on_students = {e.lower() for e in client.students(classroom_id)}
        on_teachers = {e.lower() for e in client.teachers(classroom_id)}
    except ClassroomError as exc:
        summary.errors.append(
            {"course_id": moodle_id, "classroom_id": classroom_id, "error": str(exc)}
        )
        return
    for email in sorted(teachers - on_teachers):
        if email in on_students:  # promoted in Moodle: Classroom holds one role per course
            attempt("remove_student", email)
        attempt("add_teacher", email)
    for email in sorted(students - teachers - on_students - on_teachers):
        attempt("add_student", email)
    if may_remove:
        for email in sorted(on_students - students - teachers):
            attempt("remove_student", email)
