"""A course on the two-company site whose people were last seen at chosen times; everyone else
on the site was seen yesterday, so only this course has anyone to remove."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from common.appdb import AppDB
from common.moodle import MoodleSource
from tests.factories.sites import DAY, NOW, Site

GRACE = 7


@dataclass
class Lab:
    site: Site
    course: int
    users: dict[str, int]
    moodle: MoodleSource
    appdb: AppDB


def seen(site: Site, user: int, course: int, when: int) -> None:
    site.moodle.insert("user_lastaccess", userid=user, courseid=course, timeaccess=when)


def build_lab(site: Site, app_db_url: str, now: int = NOW) -> Lab:
    """The lab course with its people last seen relative to `now`."""
    moodle = site.moodle
    ue, e = moodle.tables.user_enrolments, moodle.tables.enrol
    with moodle.engine.connect() as connection:
        pairs = set(
            connection.execute(
                select(ue.c.userid, e.c.courseid).join(e, e.c.id == ue.c.enrolid)
            ).all()
        )
    for user, course in pairs:
        seen(site, user, course, now - DAY)
    course = moodle.course(fullname="Unenroll Lab")
    people = {
        "old": ("Olga", "Old", "olga@school.example", now - 12 * DAY),  # 12 days: candidate
        "never": ("Nina", "Never", "nina@school.example", None),  # enrolled 15 days ago
        "edge": ("Eddy", "Edge", "eddy@school.example", now - GRACE * DAY),  # exactly 7: stays
        "recent": ("Rita", "Recent", "rita@school.example", now - DAY),
        "staff": ("Stan", "Staff", "stan@Staff.Example", now - 30 * DAY),  # protected domain
        "boss": ("Bea", "Boss", "Boss@School.Example", now - 30 * DAY),  # protected email
    }
    for n in range(4):
        people[f"busy{n}"] = (f"Busy{n}", "Bee", f"busy{n}@school.example", now - 2 * DAY)
    users: dict[str, int] = {}
    for key, (first, last, email, when) in people.items():
        users[key] = moodle.user(username=f"lab_{key}", firstname=first, lastname=last, email=email)
        moodle.enrol(users[key], course, timestart=now - (15 if key == "never" else 40) * DAY)
        if when is not None:
            seen(site, users[key], course, when)
    return Lab(site, course, users, MoodleSource(site.url), AppDB(app_db_url))
