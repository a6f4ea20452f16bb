"""IOMAD tenants of the demo site: companies, their departments and who belongs where.

Company sizes are uneven (a few big tenants, a long tail of small ones). Every company has a
company manager (managertype 1) in its top department; bigger ones get two child departments
with a department manager each; teachers are company educators; one learner belongs to two
companies, which the schema allows and tenant scoping must handle.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import count
from typing import Any

from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.contexts import COMPANY, ContextTree
from common.moodle.demo.courses import Categories
from common.moodle.demo.model import Company, DemoSite, Department, Membership, Person
from common.moodle.demo.people import DEMO_STUDENT
from common.moodle.demo.vocabulary import CITIES, COMPANY_KINDS, COMPANY_WORDS, DEPARTMENTS

COMPANY_COLUMNS = (
    "id", "name", "shortname", "code", "city", "country", "category", "suspended", "parentid",
    "maxusers",
)  # fmt: skip
DEPARTMENT_COLUMNS = ("id", "name", "shortname", "company", "parent")
COMPANY_USER_COLUMNS = (
    "id", "companyid", "userid", "managertype", "departmentid", "suspended", "educator",
)  # fmt: skip
COMPANY_COURSE_COLUMNS = ("id", "companyid", "courseid", "departmentid")
IOMAD_COURSE_COLUMNS = (
    "id", "courseid", "licensed", "shared", "validlength", "warnexpire", "warncompletion",
    "notifyperiod", "expireafter", "warnnotstarted", "hasgrade",
)  # fmt: skip
SHARED_COURSE_COLUMNS = ("id", "companyid", "courseid")

COMPANY_MANAGER, DEPARTMENT_MANAGER = 1, 2
# Companies with at least this many members get two child departments.
SPLIT_AT_MEMBERS = 12


def plan_companies(
    site: DemoSite,
    rng: random.Random,
    *,
    companies: int,
    categories: Categories,
    contexts: ContextTree,
) -> None:
    for index in range(companies):
        word = COMPANY_WORDS[index % len(COMPANY_WORDS)]
        kind = COMPANY_KINDS[index // len(COMPANY_WORDS) % len(COMPANY_KINDS)]
        city, country = CITIES[index % len(CITIES)]
        company = Company(index + 1, f"{word} {kind}", f"{word.lower()}{index + 1}", city, country)
        company.category_id = categories.add(company.name)
        company.context_id = contexts.add(COMPANY, company.id)
        site.companies.append(company)
    _assign_members(site, rng)


def _assign_members(site: DemoSite, rng: random.Random) -> None:
    department_ids = count(1)
    for company in site.companies:
        top = Department(next(department_ids), company.name, company.shortname, company.id, 0)
        company.departments.append(top)
    learners = [p for p in site.people if p.kind == "learner" and not p.deleted]
    managers = [p for p in learners if _can_manage(p)][: len(site.companies)]
    for company, manager in zip(site.companies, managers, strict=False):
        _join(company, manager, COMPANY_MANAGER)
        manager.engagement = max(manager.engagement, 0.4)
        manager.username = f"manager.{company.shortname}"
        manager.email = f"{manager.username}@example.com"
    teachers = [p for p in site.people if p.kind == "teacher"]
    for index, teacher in enumerate(teachers):
        _join(site.companies[index % len(site.companies)], teacher, 0, educator=1)
    # Uneven tenants: the first companies are the big ones.
    weights = [1 / (rank + 1) ** 0.7 for rank in range(len(site.companies))]
    for learner in learners:
        if learner.company_ids:
            continue
        if learner.username == DEMO_STUDENT:
            _join(site.companies[0], learner, 0)
        else:
            _join(rng.choices(site.companies, weights)[0], learner, 0)
    for company in site.companies:
        _split_departments(company, rng, department_ids, site)
    if len(site.companies) > 1:
        _join_second_company(site)


def _can_manage(person: Person) -> bool:
    return person.auth == "manual" and person.can_log_in and person.username != DEMO_STUDENT


def _join(company: Company, person: Person, managertype: int, *, educator: int = 0) -> None:
    company.members.append(Membership(person.id, company.top_department.id, managertype, educator))
    person.company_ids.append(company.id)


def _split_departments(
    company: Company, rng: random.Random, department_ids: Iterator[int], site: DemoSite
) -> None:
    ordinary = [m for m in company.members if m.managertype == 0 and not m.educator]
    if len(company.members) < SPLIT_AT_MEMBERS:
        return
    top = company.top_department
    for name in rng.sample(DEPARTMENTS, 2):
        shortname = f"{company.shortname}-{name.lower()}"[:32]
        company.departments.append(
            Department(next(department_ids), name, shortname, company.id, top.id)
        )
    children = company.departments[1:]
    for membership in ordinary:
        # A fifth of the staff stays in the top department.
        if rng.random() >= 0.2:
            membership.department_id = rng.choice(children).id
    for child in children:
        staff = [m for m in ordinary if m.department_id == child.id]
        heads = [m for m in staff if _can_manage(site.person(m.user_id))]
        if heads:
            heads[0].managertype = DEPARTMENT_MANAGER


def _join_second_company(site: DemoSite) -> None:
    first, second = site.companies[0], site.companies[1]
    for membership in first.members:
        person = site.person(membership.user_id)
        if membership.managertype == 0 and not membership.educator and _can_manage(person):
            _join(second, person, 0)
            return


def write_companies(writer: BulkWriter, site: DemoSite) -> None:
    companies = site.companies
    writer.insert(
        "company",
        COMPANY_COLUMNS,
        (
            (c.id, c.name, c.shortname, c.shortname.upper(), c.city, c.country, c.category_id,
             0, 0, 0)
            for c in companies
        ),
    )  # fmt: skip
    writer.insert(
        "department",
        DEPARTMENT_COLUMNS,
        (
            (d.id, d.name, d.shortname, d.company_id, d.parent)
            for c in companies
            for d in c.departments
        ),
    )
    writer.insert("company_users", COMPANY_USER_COLUMNS, _company_user_rows(site))
    writer.insert("company_course", COMPANY_COURSE_COLUMNS, _company_course_rows(site))
    writer.insert(
        "iomad_courses",
        IOMAD_COURSE_COLUMNS,
        (
            # Compliance-style courses (every fourth) expire after a year: validlength in days.
            (index, c.id, c.licensed, c.shared, 365 if c.id % 4 == 0 else 0, 0, 0, 0, 0, 0, 1)
            for index, c in enumerate(site.courses, start=1)
        ),
    )
    shared = [(company_id, c.id) for c in site.courses for company_id in c.shared_with]
    writer.insert(
        "company_shared_courses",
        SHARED_COURSE_COLUMNS,
        ((index, *pair) for index, pair in enumerate(shared, start=1)),
    )


def _company_user_rows(site: DemoSite) -> Iterator[tuple[Any, ...]]:
    members = ((c.id, m) for c in site.companies for m in c.members)
    for index, (company_id, m) in enumerate(members, start=1):
        yield (index, company_id, m.user_id, m.managertype, m.department_id, 0, m.educator)


def _company_course_rows(site: DemoSite) -> Iterator[tuple[Any, ...]]:
    owned = [(c.company_id, c.id) for c in site.courses if c.company_id is not None]
    for index, (company_id, course_id) in enumerate(owned, start=1):
        company = site.companies[company_id - 1]
        yield (index, company.id, course_id, company.top_department.id)
