"""Who is enrolled where: enrol instances, user_enrolments and role assignments.

Each course has the instances a new Moodle course gets (manual on, guest off, self on or off)
and, for IOMAD licensed courses, a license instance. Learners enrol into courses of their
companies' course sets over the seeded window and the weeks before it, so a completion can
fall anywhere in the window; teachers are enrolled before the course starts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import count
from typing import Any

from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.model import ADMIN_ID, DAY, HOUR, Course, DemoSite, Enrolment, Person
from common.moodle.demo.people import DEMO_STUDENT
from common.moodle.demo.site import role_ids

ENROL_COLUMNS = (
    "id", "enrol", "status", "courseid", "sortorder", "enrolperiod", "expirythreshold", "roleid",
    "customint6", "timecreated", "timemodified",
)  # fmt: skip
USER_ENROLMENT_COLUMNS = (
    "id", "status", "enrolid", "userid", "timestart", "timeend", "modifierid", "timecreated",
    "timemodified",
)  # fmt: skip
ROLE_ASSIGNMENT_COLUMNS = (
    "id", "roleid", "contextid", "userid", "timemodified", "modifierid", "component", "itemid",
    "sortorder",
)  # fmt: skip

# Learners enrol during the window and up to this many days before it.
ENROL_LEAD_DAYS = 60
MEAN_COURSES_PER_LEARNER = 4.5


def plan_enrolments(site: DemoSite, rng: random.Random) -> None:
    enrol_ids = count(1)
    for course in site.courses:
        methods = ["manual", "guest", "self"] + (["license"] if course.licensed else [])
        course.enrol_ids = {method: next(enrol_ids) for method in methods}
    enrolments = _teacher_enrolments(site) + [
        enrolment
        for person in site.people
        if person.kind == "learner" and not person.deleted
        for enrolment in _learner_enrolments(site, rng, person)
    ]
    # user_enrolments ids grow with time, as on a live site.
    enrolments.sort(key=lambda e: (e.timestart, e.user_id, e.course.id))
    for enrolment_id, enrolment in enumerate(enrolments, start=1):
        enrolment.id = enrolment_id
    site.enrolments = enrolments


def _teacher_enrolments(site: DemoSite) -> list[Enrolment]:
    teachers = [p for p in site.people if p.kind == "teacher"]
    enrolments = []
    for index, course in enumerate(site.courses):
        # Prefer the owning company's educators, so a company's courses have its own teachers.
        own = [t for t in teachers if course.company_id in t.company_ids] or teachers
        editing = own[index % len(own)]
        staff = [("editingteacher", editing)]
        assistant = teachers[(index + 1) % len(teachers)]
        if index % 2 and assistant is not editing:
            staff.append(("teacher", assistant))
        for role, teacher in staff:
            start = max(teacher.timecreated, course.startdate - 3 * DAY)
            enrolments.append(Enrolment(0, teacher.id, course, "manual", role, start))
    return enrolments


def _learner_enrolments(site: DemoSite, rng: random.Random, person: Person) -> Iterator[Enrolment]:
    clock = site.clock
    if site.iomad:
        open_to = {
            cid for c in site.companies if c.id in person.company_ids for cid in c.course_ids
        }
        candidates = [site.course_by_id(cid) for cid in sorted(open_to)]
    else:
        candidates = site.courses
    candidates = [c for c in candidates if c.visible]
    wanted = max(0, round(rng.gauss(MEAN_COURSES_PER_LEARNER, 2.0)))
    if person.username == DEMO_STUDENT:
        wanted = max(wanted, 3)
    for course in rng.sample(candidates, min(wanted, len(candidates))):
        earliest = max(person.timecreated, course.startdate, clock.start - ENROL_LEAD_DAYS * DAY)
        latest = clock.now - 2 * HOUR
        if earliest >= latest:
            continue
        start = rng.randint(earliest, latest)
        method = _method(site, rng, course)
        enrolment = Enrolment(
            0, person.id, course, method, "student", start,
            timeend=start + 30 * DAY if rng.random() < 0.02 else 0,
            status=1 if rng.random() < 0.03 else 0,
            modifierid=_enrolled_by(site, person, method),
        )  # fmt: skip
        yield enrolment
        # One user can hold several enrolments in one course, one per method.
        if method == "manual" and course.self_enrol_open and rng.random() < 0.01:
            yield Enrolment(
                0, person.id, course, "self", "student", start + HOUR, modifierid=person.id
            )


def _method(site: DemoSite, rng: random.Random, course: Course) -> str:
    if course.licensed:
        return "license"
    if course.self_enrol_open and rng.random() < 0.3:
        return "self"
    return "manual"


def _enrolled_by(site: DemoSite, person: Person, method: str) -> int:
    if method != "manual":
        return person.id
    if site.iomad and person.company_ids:
        managers = site.companies[person.company_ids[0] - 1].manager_ids
        if managers and managers[0] != person.id:
            return managers[0]
    return ADMIN_ID


def write_enrolments(writer: BulkWriter, site: DemoSite) -> None:
    writer.insert("enrol", ENROL_COLUMNS, _enrol_rows(site))
    writer.insert(
        "user_enrolments",
        USER_ENROLMENT_COLUMNS,
        (
            (e.id, e.status, e.course.enrol_ids[e.method], e.user_id, e.timestart, e.timeend,
             e.modifierid, e.timestart, e.timestart)
            for e in site.enrolments
        ),
    )  # fmt: skip
    writer.insert("role_assignments", ROLE_ASSIGNMENT_COLUMNS, _role_assignment_rows(site))


def _enrol_rows(site: DemoSite) -> Iterator[tuple[Any, ...]]:
    student = role_ids(site.iomad)["student"]
    for course in site.courses:
        for sortorder, (method, enrol_id) in enumerate(course.enrol_ids.items()):
            status = {"guest": 1, "self": 0 if course.self_enrol_open else 1}.get(method, 0)
            roleid = 0 if method == "guest" else student
            # customint6 on a self instance: new enrolments allowed.
            customint6 = 1 if method == "self" else None
            yield (
                enrol_id, method, status, course.id, sortorder, 0, 86_400, roleid, customint6,
                course.timecreated, course.timecreated,
            )  # fmt: skip


def _role_assignment_rows(site: DemoSite) -> Iterator[tuple[Any, ...]]:
    roles = role_ids(site.iomad)
    ids = count(1)
    assigned: set[tuple[int, int, int]] = set()
    for e in site.enrolments:
        key = (roles[e.role], e.course.context_id, e.user_id)
        # Enrolling twice by two methods still gives one assignment of the role.
        if key not in assigned:
            assigned.add(key)
            yield (next(ids), *key, e.timestart, e.modifierid, "", 0, 0)
    # IOMAD managers hold their role in the company context (level 13).
    company_roles = {1: roles.get("companymanager"), 2: roles.get("companydepartmentmanager")}
    for company in site.companies:
        for m in company.members:
            if m.managertype in company_roles:
                yield (next(ids), company_roles[m.managertype], company.context_id, m.user_id,
                       site.clock.start, ADMIN_ID, "", 0, 0)  # fmt: skip
