"""`scope_for`: the one answer to "may this viewer see or act on company X, and how much of it",
checked with viewers as `load_viewer` builds them from the two-company site."""

from __future__ import annotations

import pytest

from common.access.viewer import load_viewer
from common.appdb import AppDB
from common.moodle import MoodleSource
from common.tenancy import MANAGE, VIEW, TenantScope, TenantViolation, scope_for


@pytest.fixture
def viewer_of(site, app_db_url):  # type: ignore[no-untyped-def]
    source, appdb = MoodleSource(site.url), AppDB(app_db_url)

    def load(name: str):  # type: ignore[no-untyped-def]
        with appdb.transaction() as session:
            return load_viewer(source, session, site.users[name])

    yield load
    source.dispose()
    appdb.dispose()


def test_site_admin_sees_and_manages_every_company(site, viewer_of):
    admin = viewer_of("admin")
    assert scope_for(admin) == TenantScope(company_ids=None)
    b = site.companies["B"]
    assert scope_for(admin, b) == scope_for(admin, b, MANAGE) == TenantScope(company_ids=(b,))


def test_company_manager_sees_and_manages_only_their_company(site, viewer_of):
    mgr = viewer_of("mgr_a")
    a, b = site.companies["A"], site.companies["B"]
    assert scope_for(mgr) == scope_for(mgr, a, MANAGE) == TenantScope(company_ids=(a,))
    for action in (VIEW, MANAGE):
        with pytest.raises(TenantViolation) as refused:
            scope_for(mgr, b, action)
        assert refused.value.company_id == b


def test_membership_alone_does_not_let_a_manager_act_on_another_company(site, viewer_of):
    """Finding 1: a manager of A who is a plain member of B must not manage B."""
    both = viewer_of("mgr_a_in_b")
    a, b = site.companies["A"], site.companies["B"]
    with pytest.raises(TenantViolation):
        scope_for(both, b, MANAGE)
    # Viewing B as a plain member: their own data only.
    assert scope_for(both, b) == TenantScope(company_ids=(b,), user_ids=frozenset({both.user_id}))
    # No company named: every company they manage (here only A).
    assert scope_for(both, None, MANAGE) == TenantScope(company_ids=(a,))
    assert scope_for(both) == TenantScope(company_ids=(a,))


def test_reporter_reads_the_whole_company_but_manages_nothing(site, viewer_of):
    reporter = viewer_of("rep_b")
    b = site.companies["B"]
    assert scope_for(reporter) == TenantScope(company_ids=(b,))
    with pytest.raises(TenantViolation):
        scope_for(reporter, b, MANAGE)


def test_department_manager_sees_their_department_and_below(site, viewer_of):
    dept = viewer_of("dept_a")
    subtree = frozenset({site.departments["Acme Sales"], site.departments["Acme Sales North"]})
    a = site.companies["A"]
    assert scope_for(dept) == TenantScope(company_ids=(a,), department_ids=subtree)
    with pytest.raises(TenantViolation):
        scope_for(dept, a, MANAGE)


def test_teachers_see_their_courses_and_learners_their_own_data(site, viewer_of):
    teacher = viewer_of("teacher_a")
    a = site.companies["A"]
    assert scope_for(teacher) == TenantScope(
        company_ids=(a,), course_ids=frozenset({site.courses["First Aid"]})
    )
    solo = viewer_of("teacher_solo")
    assert scope_for(solo) == TenantScope(
        company_ids=None, course_ids=frozenset({site.courses["Shared Ethics"]})
    )
    with pytest.raises(TenantViolation):
        scope_for(solo, a)
    ana = viewer_of("ana")
    assert scope_for(ana) == TenantScope(company_ids=(a,), user_ids=frozenset({ana.user_id}))
    with pytest.raises(TenantViolation):
        scope_for(ana, None, MANAGE)
