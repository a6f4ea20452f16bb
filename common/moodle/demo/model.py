"""The demo site as planned in memory before anything is written: who, what, when.

Planning steps fill these objects in order (people, companies, catalogue, enrolments); the
writers turn them into Moodle rows and the log simulator replays them as events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DAY = 86_400
HOUR = 3_600

GUEST_ID = 1
ADMIN_ID = 2
SITE_COURSE_ID = 1


def topic_rng(seed: int, topic: str) -> random.Random:
    """One generator per planning topic, so a change in one topic leaves the others' data alone.

    A str seed is hashed with SHA-512 by `random`, independent of PYTHONHASHSEED.
    """
    return random.Random(f"manireports-demo/{seed}/{topic}")


@dataclass(frozen=True)
class Clock:
    """The seeded window: `days` days of activity ending at `now` (Unix seconds)."""

    now: int
    days: int

    @property
    def start(self) -> int:
        return self.now - self.days * DAY

    def in_window(self, when: int) -> bool:
        return self.start <= when < self.now

    def day_index(self, when: int) -> int:
        return (when - self.start) // DAY


@dataclass(slots=True)
class Person:
    id: int
    username: str
    firstname: str
    lastname: str
    email: str
    kind: str  # "learner" or "teacher"
    auth: str = "manual"
    password: str = ""
    confirmed: int = 1
    suspended: int = 0
    deleted: int = 0
    timecreated: int = 0
    timedeleted: int = 0
    idnumber: str = ""
    city: str = ""
    country: str = ""
    timezone: str = "99"
    # 0 never logs in; 1 logs in most days. Drives sessions, pace and completion.
    engagement: float = 0.0
    company_ids: list[int] = field(default_factory=list)

    @property
    def can_log_in(self) -> bool:
        return (
            self.engagement > 0
            and not (self.deleted or self.suspended)
            and self.confirmed == 1
            and self.auth != "nologin"
        )

    @property
    def ip(self) -> str:
        return f"10.{self.id >> 16 & 255}.{self.id >> 8 & 255}.{self.id & 255}"


@dataclass(slots=True)
class Department:
    id: int
    name: str
    shortname: str
    company_id: int
    parent: int


@dataclass(slots=True)
class Membership:
    """A company_users row."""

    user_id: int
    department_id: int
    managertype: int = 0
    educator: int = 0


@dataclass(slots=True)
class Company:
    id: int
    name: str
    shortname: str
    city: str
    country: str
    category_id: int = 0
    context_id: int = 0
    departments: list[Department] = field(default_factory=list)
    members: list[Membership] = field(default_factory=list)
    course_ids: list[int] = field(default_factory=list)
    license_ids: list[int] = field(default_factory=list)

    @property
    def top_department(self) -> Department:
        return self.departments[0]

    @property
    def manager_ids(self) -> list[int]:
        return [m.user_id for m in self.members if m.managertype == 1]


@dataclass(slots=True)
class Activity:
    """A course module (course_modules row) and the instance behind it."""

    cm_id: int
    course_id: int
    modname: str
    module_id: int
    instance: int
    section_id: int
    context_id: int
    name: str
    completion: int  # 0 none, 1 manual, 2 automatic
    completionview: int = 0
    completionpassgrade: int = 0
    deletioninprogress: int = 0
    grade_item_id: int = 0
    grade: float = 0.0  # quiz.grade, scorm.maxgrade
    sumgrades: float = 0.0  # quiz.sumgrades
    gradepass: float = 0.0
    scorm_version: str = ""
    sco_ids: list[int] = field(default_factory=list)

    @property
    def tracked(self) -> bool:
        return self.completion > 0 and not self.deletioninprogress


@dataclass(slots=True)
class Course:
    id: int
    shortname: str
    fullname: str
    category_id: int
    context_id: int
    startdate: int
    timecreated: int
    visible: int = 1
    activities: list[Activity] = field(default_factory=list)
    sections: list[tuple[int, int]] = field(default_factory=list)  # (id, section number)
    grade_item_id: int = 0
    # IOMAD: owning company (None = not a company's own course), iomad_courses.shared
    # (0 no, 1 open, 2 closed to the companies in shared_with) and licensing.
    company_id: int | None = None
    shared: int = 0
    shared_with: list[int] = field(default_factory=list)
    licensed: int = 0
    self_enrol_open: bool = False
    enrol_ids: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Enrolment:
    """A user_enrolments row, with the role it gave in the course context."""

    id: int
    user_id: int
    course: Course
    method: str
    role: str
    timestart: int
    timeend: int = 0
    status: int = 0
    modifierid: int = ADMIN_ID

    def active_at(self, when: int) -> bool:
        return (
            self.status == 0
            and self.timestart <= when
            and (self.timeend == 0 or self.timeend > when)
        )


@dataclass(slots=True)
class DemoSite:
    clock: Clock
    iomad: bool
    people: list[Person] = field(default_factory=list)
    companies: list[Company] = field(default_factory=list)
    courses: list[Course] = field(default_factory=list)
    enrolments: list[Enrolment] = field(default_factory=list)

    def person(self, user_id: int) -> Person:
        # Ids are dense: people from 1 (guest), courses from 2 (after the site course).
        return self.people[user_id - 1]

    def course_by_id(self, course_id: int) -> Course:
        return self.courses[course_id - SITE_COURSE_ID - 1]
