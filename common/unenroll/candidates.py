"""Who the policy would remove, and why: per Moodle course, the people with an active enrolment
(user_enrolments.status 0 through an enabled enrol instance, not ended) whose last access to
that course (`user_lastaccess.timeaccess`) is more than the grace period ago — never accessed:
measured from their enrolment (timestart, else timecreated). Exactly the grace period is not
more: with 7 days, someone last seen 7 × 24 h ago stays.

Protected people (their email, or their Google email when the identity map names one, matches a
protected domain or email, case-insensitive) are left out and listed apart with the reason.

The Google email: `common.identity.resolve.resolve(appdb, "moodle", user_id)` when
that package is installed (the identity-mapping work) and an app DB is given; when it is not
installed, or has no mapping for the person, the Moodle user's email is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from common.moodle import MoodleSource
from common.unenroll.policy import MOODLE_SOURCE, Policy

DAY_S = 86_400
SITE_COURSE_ID = 1  # the front page: nobody is enrolled in it for learning


@dataclass(frozen=True)
class CourseRef:
    """The Moodle course a removal is about; a Remover finds its Classroom course from it."""

    course_id: int
    fullname: str
    shortname: str
    source: str = MOODLE_SOURCE


@dataclass(frozen=True)
class Person:
    user_id: int
    name: str
    email: str  # the address removed from Classroom (Google email when mapped)
    moodle_email: str
    course: CourseRef
    days_inactive: int
    last_access: datetime | None  # None: never accessed the course
    enrolled: datetime
    why: str

    @property
    def source(self) -> str:
        return self.course.source

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "name": self.name,
            "email": self.email,
            "source": self.source,
            "course_id": self.course.course_id,
            "course": self.course.fullname,
            "days_inactive": self.days_inactive,
            "last_access": _iso(self.last_access),
            "enrolled": _iso(self.enrolled),
            "why": self.why,
        }


@dataclass(frozen=True)
class Protected:
    person: Person
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.person.as_dict(), "protected": self.reason}


@dataclass(frozen=True)
class Preview:
    candidates: list[Person]
    protected: list[Protected]
    rosters: dict[int, int]  # course id → people actively enrolled (protected included)
    courses: dict[int, CourseRef]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def why_included(days: int, last_access: datetime | None, enrolled_days: int) -> str:
    if last_access is None:
        return (
            f"never accessed; enrolled {enrolled_days} day{'s' if enrolled_days != 1 else ''} ago"
        )
    return (
        f"no access for {days} day{'s' if days != 1 else ''} "
        f"(last {last_access.date().isoformat()})"
    )


EmailOf = Callable[[int, str], str]


def identity_resolver(appdb: Any | None) -> EmailOf:
    """user id, Moodle email → the email to remove: the identity map's Google email when the
    identity package (common/identity, the identity-mapping work) is installed and maps the
    person, else the Moodle email. Optional on purpose: without it the policy still works on
    Moodle's addresses."""
    if appdb is None:
        return _moodle_email
    try:
        module = importlib.import_module("common.identity.resolve")
    except ModuleNotFoundError:
        return _moodle_email
    resolve = getattr(module, "resolve", None)
    missing = getattr(module, "MappingMissing", None)
    if not callable(resolve) or not (isinstance(missing, type) and issubclass(missing, Exception)):
        return _moodle_email

    def email_of(user_id: int, email: str) -> str:
        try:
            found = resolve(appdb, MOODLE_SOURCE, user_id)
        except missing:  # not mapped: the Moodle email serves
            return email
        return str(found or email)

    return email_of


def _moodle_email(_user_id: int, email: str) -> str:
    return email


def find_candidates(
    moodle: MoodleSource, policy: Policy, now: float, email_of: EmailOf | None = None
) -> Preview:
    """The candidates and protected people of every course, by course name then person."""
    email_of = email_of or _moodle_email
    if not policy.covers(MOODLE_SOURCE):
        return Preview([], [], {}, {})
    now_s = int(now)
    t = moodle.tables
    e, ue, u, c = t.enrol, t.user_enrolments, t.user, t.course
    la = t["user_lastaccess"]
    enrolled_at = func.max(func.coalesce(func.nullif(ue.c.timestart, 0), ue.c.timecreated)).label(
        "enrolled_at"
    )
    active = (
        select(ue.c.userid, e.c.courseid, enrolled_at)
        .join(e, e.c.id == ue.c.enrolid)
        .join(u, u.c.id == ue.c.userid)
        .where(
            ue.c.status == 0,
            e.c.status == 0,
            u.c.deleted == 0,
            or_(ue.c.timeend == 0, ue.c.timeend > now_s),
            e.c.courseid != SITE_COURSE_ID,
        )
        .group_by(ue.c.userid, e.c.courseid)
        .subquery("active")
    )
    query = (
        select(
            active.c.userid,
            active.c.courseid,
            active.c.enrolled_at,
            la.c.timeaccess,
            u.c.firstname,
            u.c.lastname,
            u.c.email,
            c.c.fullname,
            c.c.shortname,
        )
        .join(u, u.c.id == active.c.userid)
        .join(c, c.c.id == active.c.courseid)
        .outerjoin(la, and_(la.c.userid == active.c.userid, la.c.courseid == active.c.courseid))
        .order_by(c.c.fullname, c.c.id, u.c.lastname, u.c.firstname, u.c.id)
    )
    candidates: list[Person] = []
    protected: list[Protected] = []
    rosters: dict[int, int] = {}
    courses: dict[int, CourseRef] = {}
    grace_s = policy.grace_days * DAY_S
    with moodle.engine.connect() as connection:
        rows = connection.execute(query).all()
    for row in rows:
        course_id = int(row.courseid)
        course = courses.setdefault(
            course_id, CourseRef(course_id, str(row.fullname), str(row.shortname))
        )
        rosters[course_id] = rosters.get(course_id, 0) + 1
        enrolled_s = int(row.enrolled_at or 0)
        accessed = int(row.timeaccess or 0) or None
        since = accessed if accessed is not None else enrolled_s
        idle_s = now_s - since
        if idle_s <= grace_s:  # exactly the grace period is not inactive
            continue
        days = idle_s // DAY_S
        last = None if accessed is None else _at(accessed)
        moodle_email = str(row.email or "")
        email = email_of(int(row.userid), moodle_email) or moodle_email
        name = " ".join(f"{row.firstname or ''} {row.lastname or ''}".split())
        person = Person(
            int(row.userid),
            name,
            email,
            moodle_email,
            course,
            int(days),
            last,
            _at(enrolled_s),
            why_included(int(days), last, max(0, (now_s - enrolled_s) // DAY_S)),
        )
        reason = policy.protection(email, moodle_email)
        if reason:
            protected.append(Protected(person, reason))
        else:
            candidates.append(person)
    return Preview(candidates, protected, rosters, courses)
