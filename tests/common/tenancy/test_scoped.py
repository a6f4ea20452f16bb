"""`scoped()` on the two-company site (SQLite and MariaDB): every mapped table of a query is
filtered, outer joins keep their rows, subqueries and parent tables are scoped too, and a table
nobody mapped cannot be read."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import exists, func, select

from common.appdb import AppDB
from common.models.base import Base
from common.models.mail import CloudJob
from common.moodle import MoodleSource
from common.moodle.tables import table_names
from common.tenancy import (
    SITE,
    NotFound,
    TenantScope,
    TenantViolation,
    UnscopedTable,
    load_job,
    scoped,
)
from common.tenancy.columns import (
    APP_TABLES,
    FORBIDDEN_MOODLE_TABLES,
    INTERNAL_APP_TABLES,
    MOODLE_TABLES,
)
from tests.factories.sites import Site


@pytest.fixture
def source(site: Site):  # type: ignore[no-untyped-def]
    moodle = MoodleSource(site.url)
    yield moodle
    moodle.dispose()


def names(source: MoodleSource, query) -> set[str]:  # type: ignore[no-untyped-def]
    with source.engine.connect() as conn:
        return {str(row[0]) for row in conn.execute(query)}


def usernames(source: MoodleSource, scope: TenantScope) -> set[str]:
    user = source.tables.user
    return names(source, scoped(select(user.c.username).where(user.c.id > 2), scope, source))


def company(site: Site, letter: str) -> TenantScope:
    return TenantScope(company_ids=(site.companies[letter],))


def test_every_table_is_mapped_once():
    for name in table_names():
        assert (name in MOODLE_TABLES) != (name in FORBIDDEN_MOODLE_TABLES), name
    for table in Base.metadata.tables:
        assert (table in APP_TABLES) != (table in INTERNAL_APP_TABLES), table


def test_company_scope_sees_only_its_members(site, source):
    learners = {"ana", "ben", "cara", "dan"}
    assert learners <= usernames(source, company(site, "A"))
    assert not {"yuri", "zoe", "xena", "mgr_b"} & usernames(source, company(site, "A"))
    assert {"yuri", "zoe", "xena", "mgr_b", "mgr_a_in_b"} <= usernames(source, company(site, "B"))
    assert {"ana", "yuri", "teacher_solo"} <= usernames(source, SITE)


def test_department_scope_is_the_subtree(site, source):
    sales = TenantScope(
        company_ids=(site.companies["A"],),
        department_ids=frozenset(
            {site.departments["Acme Sales"], site.departments["Acme Sales North"]}
        ),
    )
    assert usernames(source, sales) == {"ana", "ben", "dept_a"}


def test_course_limit_sees_the_courses_and_their_enrolled_people(site, source):
    teacher = TenantScope(company_ids=None, course_ids=frozenset({site.courses["Shared Ethics"]}))
    assert {"ana", "yuri", "zoe"} <= usernames(source, teacher)
    assert not {"ben", "xena"} & usernames(source, teacher)
    course = source.tables.course
    assert names(source, scoped(select(course.c.fullname), teacher, source)) == {"Shared Ethics"}


def test_own_data_scope(site, source):
    own = TenantScope(company_ids=(site.companies["A"],), user_ids=frozenset({site.users["ana"]}))
    assert usernames(source, own) == {"ana"}
    course = source.tables.course
    assert names(source, scoped(select(course.c.fullname), own, source)) == {
        "Fire Safety",
        "First Aid",
        "Shared Ethics",
    }


def test_outer_join_keeps_every_course_in_scope_with_zeros(site, source):
    """A course without completions must not vanish: the filter goes into the ON clause."""
    t = source.tables
    course, cc = t.course, t.course_completions
    query = (
        select(course.c.fullname, func.count(cc.c.id))
        .outerjoin(cc, (cc.c.course == course.c.id) & cc.c.timecompleted.is_not(None))
        .where(course.c.id > 1)
        .group_by(course.c.fullname)
    )
    with source.engine.connect() as conn:
        counts = dict(conn.execute(scoped(query, company(site, "B"), source)).all())
    # Bolt sees its course and the shared one; in Shared Ethics only its own learners count.
    assert counts == {"Forklift": 2, "Shared Ethics": 1}


def test_subqueries_exists_and_parent_tables_are_scoped(site, source):
    t = source.tables
    moodle = site.moodle
    bolt_quiz = moodle.quiz(site.courses["Forklift"], name="Bolt quiz")
    moodle.quiz_attempt(site.users["yuri"], bolt_quiz)
    # quiz_attempts has no course column: its quiz decides.
    attempts = select(t.quiz_attempts.c.userid)
    assert names(source, scoped(attempts, company(site, "A"), source)) == set()
    assert names(source, scoped(attempts, company(site, "B"), source)) == {str(site.users["yuri"])}
    # A correlated EXISTS over another company's completions finds nothing.
    cc = t.course_completions
    completed = select(t.user.c.username).where(
        exists(
            select(cc.c.id).where(
                cc.c.userid == t.user.c.id, cc.c.course == site.courses["Forklift"]
            )
        )
    )
    assert names(source, scoped(completed, company(site, "A"), source)) == set()
    assert names(source, scoped(completed, company(site, "B"), source)) == {"yuri", "zoe"}


def test_unmapped_and_forbidden_tables_are_refused(source):
    with pytest.raises(UnscopedTable, match="never read"):
        scoped(select(source.tables.config.c.value), SITE, source)
    with pytest.raises(UnscopedTable, match="never read"):
        scoped(select(source.tables.external_tokens.c.token), TenantScope(company_ids=(1,)))


def test_app_tables_by_company_and_by_visible_people(site, source, app_db_url):
    appdb = AppDB(app_db_url)
    with appdb.transaction() as session:
        for letter in "AB":
            session.add(
                CloudJob(
                    companyid=site.companies[letter],
                    type="bulk",
                    status="pending",
                    source="ui",
                    subject_template=letter,
                    html_template="",
                    payload=json.dumps({}),
                    chunk_size=10,
                )
            )
    with appdb.transaction() as session:
        mine = session.scalars(scoped(select(CloudJob.subject_template), company(site, "A")))
        assert list(mine) == ["A"]
        b_job = session.scalar(select(CloudJob.id).where(CloudJob.subject_template == "B"))
        assert load_job(session, b_job, company(site, "B")).subject_template == "B"
        with pytest.raises(TenantViolation) as refused:
            load_job(session, b_job, company(site, "A"))
        assert refused.value.company_id == site.companies["B"]
        with pytest.raises(NotFound):
            load_job(session, b_job + 1000, SITE)
    appdb.dispose()


def test_scoping_is_a_new_query_the_original_is_unchanged(site, source):
    user = source.tables.user
    query = select(user.c.username).where(user.c.id > 2)
    scoped(query, company(site, "B"), source)
    assert "ana" in names(source, query)
