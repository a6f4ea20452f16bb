"""Built dashboards in the app DB: the visibility matrix (who sees which, on every read), who
may change which, and the audit entries, with viewers as `load_viewer` builds them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from common.access.viewer import load_viewer
from common.appdb import AppDB
from common.dashboardbuilder.store import (
    DashboardFields,
    delete_dashboard,
    load_changeable,
    load_visible,
    may_change,
    save_dashboard,
    visibilities_for,
    visible_dashboards,
)
from common.errors import FieldError
from common.models.access import AuditLog
from common.models.custom import CustomDashboard
from common.moodle import MoodleSource
from common.reports import Report, get_report
from common.tenancy import NotFound, TenantViolation

WIDGET = {"id": "w1", "type": "kpi", "report": "course_completion", "filters": {"days": "90"},
          "options": {}, "x": 0, "y": 0, "w": 3, "h": 2}  # fmt: skip


def resolve(name: str) -> Report:
    report = get_report(name)
    if report is None:
        raise FieldError("report", f"there is no report {name!r}")
    return report


@pytest.fixture
def world(site, app_db_url):  # type: ignore[no-untyped-def]
    source, appdb = MoodleSource(site.url), AppDB(app_db_url)

    class World:
        def viewer(self, name: str):  # type: ignore[no-untyped-def]
            with appdb.transaction() as session:
                return load_viewer(source, session, site.users[name])

        def save(self, who: str, visibility: str, company: str | None = None,
                 title: str | None = None, layout: str | None = None,
                 dashboard_id: int | None = None) -> int:  # fmt: skip
            viewer = self.viewer(who)
            fields = DashboardFields(
                title=title or f"{visibility} by {who}", visibility=visibility,
                company_id=site.companies[company] if company else None,
                layout=layout if layout is not None else json.dumps([WIDGET]),
            )  # fmt: skip
            with appdb.transaction() as session:
                row = load_changeable(session, viewer, dashboard_id) if dashboard_id else None
                saved = save_dashboard(session, viewer, row, fields, resolve=resolve,
                                       source=source, ip="192.0.2.1")  # fmt: skip
                return saved.id

        def visible(self, who: str) -> set[str]:
            with appdb.transaction() as session:
                return {d.title for d in visible_dashboards(session, self.viewer(who))}

        def count(self, model, **where) -> int:  # type: ignore[no-untyped-def]
            with appdb.transaction() as session:
                query = select(func.count()).select_from(model)
                for key, value in where.items():
                    query = query.where(getattr(model, key) == value)
                return int(session.scalar(query) or 0)

    world = World()
    world.appdb = appdb  # type: ignore[attr-defined]
    world.ids = {  # type: ignore[attr-defined]
        "global": world.save("admin", "global", title="global"),
        "company A": world.save("mgr_a", "company", "A", title="company A"),
        "company B": world.save("mgr_b", "company", "B", title="company B"),
        "admin's company B": world.save("admin", "company", "B", title="admin's company B"),
        "private mgr_a": world.save("mgr_a", "private", title="private mgr_a"),
        "private admin": world.save("admin", "private", title="private admin"),
    }
    yield world
    source.dispose()
    appdb.dispose()


SEES = {
    "admin": {"global", "company A", "company B", "admin's company B", "private admin"},
    "mgr_a": {"global", "company A", "private mgr_a"},
    "mgr_b": {"global", "company B", "admin's company B"},
    "teacher_a": {"global", "company A"},
    "ana": {"global", "company A"},
    "yuri": {"global", "company B", "admin's company B"},
    "teacher_solo": {"global"},
    "multi": {"global", "company A", "company B", "admin's company B"},
    "dept_a": {"global", "company A"},
}


@pytest.mark.parametrize("who", sorted(SEES))
def test_visibility_matrix_on_list_and_load(world, who):
    assert world.visible(who) == SEES[who]
    viewer = world.viewer(who)
    with world.appdb.transaction() as session:
        for title, dashboard_id in world.ids.items():
            if title in SEES[who]:
                assert load_visible(session, viewer, dashboard_id).title == title
            else:
                with pytest.raises(NotFound):
                    load_visible(session, viewer, dashboard_id)
                with pytest.raises(NotFound):  # not a 403 that says it exists
                    load_changeable(session, viewer, dashboard_id)


CHANGES = {
    "admin": {"global", "company A", "company B", "admin's company B", "private admin"},
    "mgr_a": {"company A", "private mgr_a"},
    "mgr_b": {"company B", "admin's company B"},
    "multi": {"company A"},  # manages Acme, only reports on Bolt
    "teacher_a": set(),
    "ana": set(),
}


@pytest.mark.parametrize("who", sorted(CHANGES))
def test_who_may_change_which(world, who):
    viewer = world.viewer(who)
    with world.appdb.transaction() as session:
        rows = {d.title: d for d in visible_dashboards(session, viewer)}
        assert {t for t, d in rows.items() if may_change(viewer, d)} == CHANGES[who]
        for title in set(rows) - CHANGES[who]:
            with pytest.raises(TenantViolation):
                load_changeable(session, viewer, world.ids[title])


@pytest.mark.parametrize(
    ("who", "choices"),
    [
        ("admin", ("global", "company", "private")),
        ("mgr_a", ("company", "private")),
        ("teacher_a", ()),
        ("ana", ()),
        ("dept_a", ()),
    ],  # fmt: skip
)
def test_who_may_publish_where(world, who, choices):
    assert visibilities_for(world.viewer(who)) == choices


def test_a_manager_cannot_publish_to_another_company_or_everyone(world):
    before = world.count(CustomDashboard)
    with pytest.raises(TenantViolation):
        world.save("mgr_a", "company", "B")
    with pytest.raises(FieldError) as refused:
        world.save("mgr_a", "global")
    assert refused.value.field == "visibility"
    with pytest.raises(TenantViolation):
        world.save("teacher_a", "private")
    assert world.count(CustomDashboard) == before


def test_a_manager_cannot_move_their_dashboard_to_another_company(world):
    with pytest.raises(TenantViolation):
        world.save("mgr_a", "company", "B", dashboard_id=world.ids["company A"])
    assert world.visible("mgr_b") == SEES["mgr_b"]


def test_every_field_is_checked_and_nothing_is_saved_on_error(world):
    before = (world.count(CustomDashboard), world.count(AuditLog))
    bad = json.dumps([{**WIDGET, "filters": {"days": "7"}}])
    with pytest.raises(FieldError) as refused:
        world.save("admin", "company", None, title=" ", layout=bad)
    fields = {e.field for e in refused.value.errors}
    assert fields == {"title", "company", "widgets[1].filters.days"}
    with pytest.raises(FieldError) as refused:
        world.save("admin", "nobody")
    assert refused.value.field == "visibility"
    assert (world.count(CustomDashboard), world.count(AuditLog)) == before


def test_a_company_that_does_not_exist_is_refused(world, site):
    viewer = world.viewer("admin")
    fields = DashboardFields(title="t", visibility="company", company_id=999_999, layout="[]")
    with world.appdb.transaction() as session, pytest.raises(FieldError) as refused:
        save_dashboard(session, viewer, None, fields, resolve=resolve,
                       source=MoodleSource(site.url))  # fmt: skip
    assert refused.value.field == "company"


def test_create_change_and_delete_are_audited(world, site):
    dashboard_id = world.ids["company A"]
    created = world.count(AuditLog, action="dashboard_created", object_id=str(dashboard_id))
    assert created == 1
    world.save("admin", "company", "A", title="renamed", dashboard_id=dashboard_id)
    with world.appdb.transaction() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "dashboard_changed"))
        assert entry.userid == site.users["admin"]
        assert entry.companyid == site.companies["A"]
        assert json.loads(entry.details)["changed"] == ["title"]
    viewer = world.viewer("mgr_a")
    with world.appdb.transaction() as session:
        delete_dashboard(session, viewer, load_changeable(session, viewer, dashboard_id))
    assert world.count(CustomDashboard, id=dashboard_id) == 0
    assert world.count(AuditLog, action="dashboard_deleted", object_id=str(dashboard_id)) == 1
