"""Stored report schedules on the two-company site (SQLite and MariaDB Moodle databases):
saved with the next run worked out in their zone, every bad field named at once and nothing
written, recipients outside the author's scope refused, a company's schedules out of another
company's sight, and every change audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.errors import FieldError
from common.models.access import AuditLog
from common.models.schedules import ReportSchedule
from common.schedules import next_runs, parse_recurrence
from common.schedules.store import (
    ScheduleInput,
    delete_schedule,
    frequency_text,
    get_schedule,
    list_schedules,
    save_schedule,
)
from common.tenancy import NotFound
from tests.common.schedules.conftest import author

NOW = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)


def weekly(**changes: object) -> ScheduleInput:
    fields: dict[str, object] = {
        "title": "Monday completions", "report": "course_completion",
        "filters": {"days": "90"}, "frequency": "weekly", "at": "09:00",
        "weekdays": ["mon"], "tz": "Europe/London", "emails": "boss@example.com",
        "format": "xlsx",
    }  # fmt: skip
    return ScheduleInput(**{**fields, **changes})  # type: ignore[arg-type]


def audit(appdb: AppDB) -> list[tuple[str, str | None, dict]]:  # type: ignore[type-arg]
    with appdb.transaction() as session:
        rows = session.scalars(select(AuditLog).order_by(AuditLog.id))
        return [(r.action, r.object_id, json.loads(r.details or "{}")) for r in rows]


def stored(appdb: AppDB) -> list[ReportSchedule]:
    with appdb.transaction() as session:
        found = list(session.scalars(select(ReportSchedule).order_by(ReportSchedule.id)))
        session.expunge_all()
    return found


def test_a_saved_schedule_keeps_its_fields_and_its_next_run_in_its_zone(appdb, source, site):
    manager = author(appdb, source, site.users["mgr_a"])
    row = save_schedule(appdb, source, weekly(users=[str(site.users["ana"])]), manager, now=NOW)
    # Monday 22 March 2027 is before the UK's clocks go forward (28 March): 09:00 is 09:00Z.
    assert row.next_run_at == datetime(2027, 3, 22, 9, 0, tzinfo=UTC)
    assert (row.report, row.format, row.frequency, row.at, row.weekdays, row.tz) == (
        "course_completion", "xlsx", "weekly", "09:00", "mon", "Europe/London")  # fmt: skip
    assert json.loads(row.params_json) == {"days": "90"}
    assert json.loads(row.recipients_json) == {"users": [site.users["ana"]],
                                               "emails": ["boss@example.com"]}  # fmt: skip
    assert row.companyid == site.companies["A"] and row.createdby == site.users["mgr_a"]
    assert row.active and row.attempts == 0 and row.last_status is None
    assert frequency_text(row) == "Weekly on Mon at 09:00 Europe/London"
    [(action, object_id, details)] = audit(appdb)
    assert (action, object_id) == ("schedule_create", str(row.id))
    assert details["emails"] == ["boss@example.com"] and details["report"] == "course_completion"

    # After the change, 09:00 London is 08:00Z, and the next five runs are whole weeks apart.
    later = save_schedule(appdb, source, weekly(at="09:00"), manager, schedule_id=row.id,
                          now=datetime(2027, 3, 23, tzinfo=UTC))  # fmt: skip
    assert later.next_run_at == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)
    recurrence = parse_recurrence(frequency="weekly", at="09:00", weekdays="mon",
                                  tz="Europe/London")  # fmt: skip
    assert later.next_run_at == next_runs(recurrence, datetime(2027, 3, 23, tzinfo=UTC), 1)[0]
    action, _, details = audit(appdb)[-1]
    assert action == "schedule_update"
    assert details == {"users": {"from": [site.users["ana"]], "to": []}}


def test_every_bad_field_is_named_at_once_and_nothing_is_written(appdb, source, site):
    manager = author(appdb, source, site.users["mgr_a"])
    bad = weekly(title=" ", filters={"days": "8"}, at="25:00", weekdays=["funday"], day="3",
                 tz="Mars/Olympus", emails="not-an-address", format="docx")  # fmt: skip
    with pytest.raises(FieldError) as raised:
        save_schedule(appdb, source, bad, manager, now=NOW)
    fields = [e.field for e in raised.value.errors]
    assert set(fields) == {"title", "filter_days", "at", "weekdays", "day", "tz", "emails",
                           "format"}  # fmt: skip
    assert stored(appdb) == [] and audit(appdb) == []


def test_a_report_that_does_not_exist_or_the_author_may_not_run_is_refused(appdb, source, site):
    manager = author(appdb, source, site.users["mgr_a"])
    for name in ("no_such_report", "custom_999", "company_summary", ""):
        with pytest.raises(FieldError) as raised:
            save_schedule(appdb, source, weekly(report=name, filters={}), manager, now=NOW)
        assert [e.field for e in raised.value.errors] == ["report"], name
    # A site admin may run the company summary.
    admin = author(appdb, source, site.users["admin"])
    row = save_schedule(appdb, source, weekly(report="company_summary", filters={}), admin,
                        now=NOW)  # fmt: skip
    assert row.companyid is None  # on "All companies": site-wide
    assert len(stored(appdb)) == 1


def test_filters_out_of_range_are_named_together(appdb, source, site):
    manager = author(appdb, source, site.users["mgr_a"])
    bad = weekly(report="quiz_attempts", filters={"from": "2027-13-01", "course": "x"})
    with pytest.raises(FieldError) as raised:
        save_schedule(appdb, source, bad, manager, now=NOW)
    assert {e.field for e in raised.value.errors} == {"filter_from", "filter_course"}
    backwards = weekly(report="quiz_attempts", filters={"from": "2027-02-01", "to": "2027-01-01"})
    with pytest.raises(FieldError) as raised:
        save_schedule(appdb, source, backwards, manager, now=NOW)
    assert [e.field for e in raised.value.errors] == ["filter_to"]
    assert stored(appdb) == []


def test_recipients_outside_the_authors_scope_are_refused(appdb, source, site):
    manager = author(appdb, source, site.users["mgr_a"])
    outside = weekly(users=[str(site.users["yuri"]), str(site.users["ana"]), "abc"], emails="")
    with pytest.raises(FieldError) as raised:
        save_schedule(appdb, source, outside, manager, now=NOW)
    reasons = {(e.field, e.reason) for e in raised.value.errors}
    assert ("users", "'abc' is not a user id") in reasons
    assert any(str(site.users["yuri"]) in reason for _, reason in reasons)
    assert not any(f"user {site.users['ana']} " in reason for _, reason in reasons)
    with pytest.raises(FieldError) as raised:  # none at all
        save_schedule(appdb, source, weekly(emails="", users=[]), manager, now=NOW)
    assert [e.field for e in raised.value.errors] == ["users"]
    assert stored(appdb) == []
    # Bolt's manager may send to Yuri, and to any plain address.
    bolt = author(appdb, source, site.users["mgr_b"])
    row = save_schedule(appdb, source, weekly(users=[str(site.users["yuri"])],
                                              emails="a@example.com; b@example.org"), bolt,
                        now=NOW)  # fmt: skip
    assert json.loads(row.recipients_json)["emails"] == ["a@example.com", "b@example.org"]


def test_another_companys_schedules_are_out_of_sight(appdb, source, site):
    acme = author(appdb, source, site.users["mgr_a"])
    bolt = author(appdb, source, site.users["mgr_b"])
    admin = author(appdb, source, site.users["admin"])
    mine = save_schedule(appdb, source, weekly(), acme, now=NOW)
    theirs = save_schedule(appdb, source, weekly(title="Bolt's"), bolt, now=NOW)
    assert [r.id for r in list_schedules(appdb, source, acme)] == [mine.id]
    assert [r.id for r in list_schedules(appdb, source, bolt)] == [theirs.id]
    assert {r.id for r in list_schedules(appdb, source, admin)} == {mine.id, theirs.id}
    with pytest.raises(NotFound):
        get_schedule(appdb, source, acme, theirs.id)
    with pytest.raises(NotFound):
        save_schedule(appdb, source, weekly(title="taken"), acme, schedule_id=theirs.id, now=NOW)
    with pytest.raises(NotFound):
        delete_schedule(appdb, source, acme, theirs.id)
    assert get_schedule(appdb, source, bolt, theirs.id).title == "Bolt's"
    # A department manager sees only their own, even in their company.
    dept = author(appdb, source, site.users["dept_a"])
    assert list_schedules(appdb, source, dept) == []
    with pytest.raises(NotFound):
        get_schedule(appdb, source, dept, mine.id)


def test_delete_is_audited_and_an_inactive_schedule_has_no_next_run(appdb, source, site):
    manager = author(appdb, source, site.users["mgr_a"])
    row = save_schedule(appdb, source, weekly(active=False), manager, now=NOW)
    assert row.next_run_at is None
    again = save_schedule(appdb, source, weekly(active=True), manager, schedule_id=row.id,
                          now=NOW)  # fmt: skip
    assert again.next_run_at == datetime(2027, 3, 22, 9, 0, tzinfo=UTC)
    delete_schedule(appdb, source, manager, row.id, ip="192.0.2.1")
    assert stored(appdb) == []
    action, object_id, details = audit(appdb)[-1]
    assert (action, object_id, details["title"]) == ("schedule_delete", str(row.id),
                                                     "Monday completions")  # fmt: skip
    with pytest.raises(NotFound):
        delete_schedule(appdb, source, manager, row.id)


def test_frequency_in_words():
    def words(**raw: str) -> str:
        return frequency_text(parse_recurrence(**raw))  # type: ignore[arg-type]

    assert words(frequency="daily", at="07:30", tz="UTC") == "Daily at 07:30 UTC"
    assert words(frequency="monthly", at="06:00", day="31", tz="Europe/Paris") == (
        "Monthly on day 31 (the last day in shorter months) at 06:00 Europe/Paris"
    )
    assert words(frequency="cron", cron="0 9 * * mon-fri", tz="America/New_York") == (
        "Cron 0 9 * * mon-fri America/New_York"
    )


def test_a_custom_report_is_scheduled_by_its_name_with_its_parameters(appdb, source, site):
    from common.customreports.store import save_report
    from common.customsql.params import QueryParam
    from tests.common.customreports.conftest import COMPANY_LEARNERS

    admin = author(appdb, source, site.users["admin"])
    custom = save_report(appdb, report_id=None, kind="sql", title="Learners", description="",
                         sql_text=COMPANY_LEARNERS, builder_json=None,
                         params=[QueryParam("pattern", "text", "Username like", True)],
                         company_safe=True, actor=admin.viewer, source=source)  # fmt: skip
    name = f"custom_{custom.id}"
    # A site admin on "All companies" may schedule it site-wide.
    site_wide = save_schedule(appdb, source, weekly(report=name, filters={"pattern": "a%"}),
                              admin, now=NOW)  # fmt: skip
    assert site_wide.companyid is None
    # Its required parameter missing is named as its filter.
    manager = author(appdb, source, site.users["mgr_a"])
    with pytest.raises(FieldError) as raised:
        save_schedule(appdb, source, weekly(report=name, filters={}), manager, now=NOW)
    assert [e.field for e in raised.value.errors] == ["filter_pattern"]
    row = save_schedule(appdb, source, weekly(report=name, filters={"pattern": "a%"}), manager,
                        now=NOW)  # fmt: skip
    assert (row.report, json.loads(row.params_json)) == (name, {"pattern": "a%"})
    assert row.companyid == site.companies["A"]
    # A department manager's scope is narrower than the company it reads: refused.
    dept = author(appdb, source, site.users["dept_a"])
    with pytest.raises(FieldError) as raised:
        save_schedule(appdb, source, weekly(report=name, filters={"pattern": "a%"}), dept,
                      now=NOW)  # fmt: skip
    assert [e.field for e in raised.value.errors] == ["report"]
