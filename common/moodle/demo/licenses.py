"""IOMAD licences and the outgoing-mail queue they fill.

Companies with licensed courses hold a standard licence covering them (and big companies a
reusable one too). Every licence enrolment is an allocated seat in use; a few seats are
allocated but not used yet. IOMAD queues a `license_allocated` email for each allocation and a
`user_create` email for each account a company creates; its cron sends them, so older rows
are sent and the newest are still waiting (`sent` NULL), as a queue watcher would find them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, NamedTuple

from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.model import DAY, HOUR, Company, DemoSite
from common.moodle.demo.progress import Progress

LICENSE_COLUMNS = (
    "id", "name", "allocation", "humanallocation", "validlength", "startdate", "expirydate",
    "used", "companyid", "parentid", "type", "program", "instant", "cutoffdate", "clearonexpire",
)  # fmt: skip
LICENSE_COURSE_COLUMNS = ("id", "licenseid", "courseid")
LICENSE_USER_COLUMNS = (
    "id", "licenseid", "userid", "isusing", "timecompleted", "score", "licensecourseid",
    "issuedate", "groupid",
)  # fmt: skip
EMAIL_COLUMNS = (
    "id", "templatename", "modifiedtime", "sent", "subject", "body", "companyid", "courseid",
    "userid", "senderid", "due",
)  # fmt: skip

STANDARD, REUSABLE = 0, 1
UNUSED_SEAT_SHARE = 0.05


class Licence(NamedTuple):
    id: int
    company: Company
    type: int
    course_ids: list[int]


class Seat(NamedTuple):
    licence: Licence
    user_id: int
    course_id: int
    isusing: int
    issued: int
    completed: int | None
    score: float | None


def write_licences_and_email(
    writer: BulkWriter, site: DemoSite, rng: random.Random, progress: Progress
) -> None:
    licences = _licences(site)
    seats = _used_seats(site, rng, licences, progress) + _unused_seats(site, rng, licences)
    start = site.clock.start - 60 * DAY
    used = {licence.id: sum(1 for s in seats if s.licence.id == licence.id) for licence in licences}
    writer.insert(
        "companylicense",
        LICENSE_COLUMNS,
        (
            (lic.id, f"{lic.company.name} {'reusable' if lic.type else 'standard'} licence",
             used[lic.id] + 10, used[lic.id] + 10, 365, start, start + 365 * DAY, used[lic.id],
             lic.company.id, 0, lic.type, 0, 0, 0, 0)
            for lic in licences
        ),
    )  # fmt: skip
    course_rows = [(lic.id, course_id) for lic in licences for course_id in lic.course_ids]
    writer.insert(
        "companylicense_courses",
        LICENSE_COURSE_COLUMNS,
        ((row_id, *row) for row_id, row in enumerate(course_rows, start=1)),
    )
    writer.insert(
        "companylicense_users",
        LICENSE_USER_COLUMNS,
        (
            (row_id, s.licence.id, s.user_id, s.isusing, s.completed, s.score, s.course_id,
             s.issued, 0)
            for row_id, s in enumerate(seats, start=1)
        ),
    )  # fmt: skip
    writer.insert("email", EMAIL_COLUMNS, _email_rows(site, rng, seats))


def _licences(site: DemoSite) -> list[Licence]:
    licences: list[Licence] = []
    for company in site.companies:
        licensed = [cid for cid in company.course_ids if site.course_by_id(cid).licensed]
        if not licensed:
            continue
        licences.append(Licence(len(licences) + 1, company, STANDARD, licensed))
        if len(company.members) >= 30:
            licences.append(Licence(len(licences) + 1, company, REUSABLE, licensed[:1]))
    return licences


def _used_seats(
    site: DemoSite, rng: random.Random, licences: list[Licence], progress: Progress
) -> list[Seat]:
    standard = {lic.company.id: lic for lic in licences if lic.type == STANDARD}
    seats = []
    for e in site.enrolments:
        if e.method != "license":
            continue
        person = site.person(e.user_id)
        # The seat comes from the user's company whose course set holds the course.
        licence = next(
            standard[cid]
            for cid in person.company_ids
            if cid in standard and e.course.id in standard[cid].course_ids
        )
        issued = max(person.timecreated, e.timestart - rng.randint(0, 2 * DAY))
        completed = progress.completed_at.get(e.id)
        score = progress.course_grades.get((e.user_id, e.course.id))
        seats.append(Seat(licence, e.user_id, e.course.id, 1, issued, completed, score))
    return seats


def _unused_seats(site: DemoSite, rng: random.Random, licences: list[Licence]) -> list[Seat]:
    enrolled = {(e.user_id, e.course.id) for e in site.enrolments}
    seats = []
    for licence in licences:
        members = [m.user_id for m in licence.company.members if not m.educator]
        for user_id in rng.sample(members, max(1, round(len(members) * UNUSED_SEAT_SHARE))):
            course_id = rng.choice(licence.course_ids)
            if (user_id, course_id) not in enrolled:
                issued = rng.randint(site.clock.now - 7 * DAY, site.clock.now - HOUR)
                seats.append(Seat(licence, user_id, course_id, 0, issued, None, None))
    return seats


class QueuedEmail(NamedTuple):
    template: str
    when: int
    subject: str
    body: str
    company: Company
    course_id: int | None
    user_id: int


def _email_rows(site: DemoSite, rng: random.Random, seats: list[Seat]) -> Iterator[tuple[Any, ...]]:
    queued = []
    for seat in seats:
        course, person = site.course_by_id(seat.course_id), site.person(seat.user_id)
        body = f"Dear {person.firstname},\n\nYou have been given access to {course.fullname}.\n"
        subject = f"Course access: {course.fullname}"
        queued.append(
            QueuedEmail("license_allocated", seat.issued, subject, body, seat.licence.company,
                        course.id, person.id)
        )  # fmt: skip
    for company in site.companies:
        for person in (site.person(m.user_id) for m in company.members):
            if site.clock.in_window(person.timecreated):
                body = f"Dear {person.firstname},\n\nYour account is {person.username}.\n"
                queued.append(
                    QueuedEmail("user_create", person.timecreated, "New user account", body,
                                company, None, person.id)
                )  # fmt: skip
    queued.sort(key=lambda email: (email.when, email.user_id, email.template))
    now = site.clock.now
    for row_id, email in enumerate(queued, start=1):
        # Yesterday's mail and a few failed older rows are still waiting for the cron.
        waiting = email.when >= now - DAY or rng.random() < 0.03
        sent = None if waiting else min(now - 1, email.when + rng.randint(60, 1800))
        managers = email.company.manager_ids
        yield (
            row_id, email.template, email.when, sent, email.subject, email.body,
            email.company.id, email.course_id, email.user_id, managers[0] if managers else None,
            email.when,
        )  # fmt: skip
