"""A two-company IOMAD site built from a list of facts (who is enrolled where, who completed
when) that tests also use to compute the expected figures themselves."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.db import make_engine
from tests.factories.moodle import MoodleFactory

DAY = 86_400
NOW = 1_795_000_000  # fixed clock: 2026-11-18 UTC


@dataclass(frozen=True)
class Enrolment:
    user: str
    course: str
    completed_days_ago: int | None = None
    active: bool = True  # False: a suspended enrolment, which must not count


@dataclass
class Site:
    url: str
    moodle: MoodleFactory
    users: dict[str, int] = field(default_factory=dict)
    courses: dict[str, int] = field(default_factory=dict)
    companies: dict[str, int] = field(default_factory=dict)
    enrolments: list[Enrolment] = field(default_factory=list)
    course_company: dict[str, str | None] = field(default_factory=dict)
    user_company: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    departments: dict[str, int] = field(default_factory=dict)


ENROLMENTS = [
    Enrolment("ana", "Fire Safety", 3),
    Enrolment("ben", "Fire Safety", 45),
    Enrolment("cara", "Fire Safety"),
    Enrolment("dan", "Fire Safety", 200),
    Enrolment("ana", "First Aid", 10),
    Enrolment("ben", "First Aid"),
    Enrolment("cara", "First Aid", 1, active=False),
    Enrolment("gone", "First Aid", 5),  # deleted user: never counted
    Enrolment("ana", "Shared Ethics", 20),
    Enrolment("yuri", "Shared Ethics", 2),
    Enrolment("zoe", "Shared Ethics"),
    Enrolment("yuri", "Forklift", 60),
    Enrolment("zoe", "Forklift", 8),
    Enrolment("xena", "Forklift"),
]


def build_site(url: str) -> Site:
    engine = make_engine(url)
    moodle = MoodleFactory(engine, now=NOW)
    site = Site(url=url, moodle=moodle, users={"admin": moodle.ADMIN_ID})
    site.companies = {"A": moodle.company(name="Acme"), "B": moodle.company(name="Bolt")}
    courses = (("Fire Safety", "A"), ("First Aid", "A"), ("Forklift", "B"),
               ("Shared Ethics", None), ("Induction (no learners yet)", "A"))  # fmt: skip
    for name, company in courses:
        course_id = moodle.course(fullname=name)
        site.courses[name] = course_id
        site.course_company[name] = company
        if company:
            moodle.company_course(site.companies[company], course_id)
        else:
            moodle.share_course(course_id, shared=1)
    # Acme has two departments below its top one; Sales has one of its own below it.
    top_a = moodle.top_department(site.companies["A"])
    sales = moodle.department(site.companies["A"], parent=top_a, name="Acme Sales")
    site.departments = {
        "Acme": top_a,
        "Acme Sales": sales,
        "Acme Sales North": moodle.department(site.companies["A"], parent=sales,
                                              name="Acme Sales North"),
        "Acme Ops": moodle.department(site.companies["A"], parent=top_a, name="Acme Ops"),
    }  # fmt: skip
    learner_departments = {"ana": "Acme Sales", "ben": "Acme Sales North", "cara": "Acme Ops",
                           "dan": "Acme Ops"}  # fmt: skip
    for name, company in (("ana", "A"), ("ben", "A"), ("cara", "A"), ("dan", "A"),
                          ("gone", "A"), ("yuri", "B"), ("zoe", "B"), ("xena", "B")):  # fmt: skip
        site.users[name] = moodle.user(username=name, firstname=name.title(), lastname="Learner")
        department = site.departments.get(learner_departments.get(name, ""))
        moodle.company_user(site.companies[company], site.users[name],
                            **({"departmentid": department} if department else {}))  # fmt: skip
        site.user_company[name] = company
    for enrolment in ENROLMENTS:
        user, course = site.users[enrolment.user], site.courses[enrolment.course]
        moodle.enrol(user, course, timestart=NOW - 300 * DAY, status=0 if enrolment.active else 1)
        if enrolment.completed_days_ago is not None:
            moodle.complete(user, course, when=NOW - enrolment.completed_days_ago * DAY)
    moodle.delete_user(site.users["gone"])
    site.deleted.add("gone")
    site.enrolments = list(ENROLMENTS)
    for name, company, managertype in (("mgr_a", "A", 1), ("mgr_b", "B", 1), ("rep_b", "B", 4)):
        site.users[name] = moodle.user(username=name, firstname=name, lastname="Manager")
        moodle.company_user(site.companies[company], site.users[name], managertype=managertype)
        site.user_company[name] = company
    # A manager in Acme who also reports on Bolt: the one person who may switch companies.
    site.users["multi"] = moodle.user(username="multi", firstname="Mia", lastname="Multi")
    moodle.company_user(site.companies["A"], site.users["multi"], managertype=1)
    moodle.company_user(site.companies["B"], site.users["multi"], managertype=4)
    # A department manager of Acme Sales: sees Sales and Sales North (ana, ben), not Ops.
    site.users["dept_a"] = moodle.user(username="dept_a", firstname="Dora", lastname="Dept")
    moodle.company_user(site.companies["A"], site.users["dept_a"], managertype=2,
                        departmentid=site.departments["Acme Sales"])  # fmt: skip
    site.user_company["dept_a"] = "A"
    # Manages Acme and is a plain member of Bolt: Bolt's data and email stay out of reach.
    site.users["mgr_a_in_b"] = moodle.user(username="mgr_a_in_b", firstname="Max", lastname="Both")
    moodle.company_user(site.companies["A"], site.users["mgr_a_in_b"], managertype=1)
    moodle.company_user(site.companies["B"], site.users["mgr_a_in_b"])
    site.user_company["mgr_a_in_b"] = "A"
    # Teaches the shared course and belongs to no company.
    site.users["teacher_solo"] = moodle.user(username="teacher_solo", firstname="Sol",
                                             lastname="Teach")  # fmt: skip
    moodle.enrol(site.users["teacher_solo"], site.courses["Shared Ethics"], role="editingteacher",
                 timestart=NOW - 300 * DAY)  # fmt: skip
    site.users["teacher_a"] = moodle.user(username="teacher_a", firstname="Tess", lastname="Teach")
    moodle.company_user(site.companies["A"], site.users["teacher_a"])
    moodle.enrol(site.users["teacher_a"], site.courses["First Aid"], role="editingteacher",
                 timestart=NOW - 300 * DAY)  # fmt: skip
    site.users["suspended"] = moodle.user(username="suspended", suspended=1)
    site.users["nologin"] = moodle.user(username="nologin", auth="nologin")
    site.users["ldap"] = moodle.user(username="ldap", auth="ldap", password_hash="not cached")
    site.users["legacy"] = moodle.user(username="legacy", password_scheme="bcrypt")
    engine.dispose()
    return site
