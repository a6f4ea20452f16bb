"""A stored report as a Report: found by the catalog as `custom_<id>`, paged, sorted and
streamed through the custom SQL limits, its `:companyid` bound to the scope's company."""

from __future__ import annotations

import pytest

from common.customreports import stored_report
from common.customreports.catalog import all_reports, find_report
from common.customreports.store import save_report
from common.customreports.stored_report import StoredReport, report_id_of
from common.customsql.params import QueryParam
from common.errors import FieldError
from common.reports import RunContext, registered_reports
from common.tenancy import TenantScope, TenantViolation
from tests.common.customreports.conftest import COMPANY_LEARNERS, admin_viewer

ACME = ["ana", "ben", "cara", "dan", "dept_a", "mgr_a", "mgr_a_in_b", "multi", "teacher_a"]


@pytest.fixture
def report(appdb, source) -> StoredReport:  # type: ignore[no-untyped-def]
    row = save_report(appdb, report_id=None, kind="sql", title="Learners", description="",
                      sql_text=COMPANY_LEARNERS, builder_json=None,
                      params=[QueryParam("pattern", "text", "Username like", False, "%")],
                      company_safe=True, actor=admin_viewer(), source=source)  # fmt: skip
    found = find_report(f"custom_{row.id}", appdb)
    assert isinstance(found, StoredReport)
    return found


def context(source, scope: TenantScope) -> RunContext:  # type: ignore[no-untyped-def]
    return RunContext(source=source, scope=scope, now=0)


def names(rows) -> list[str]:  # type: ignore[no-untyped-def]
    return [r["username"] for r in rows]


def test_the_catalog_finds_registered_reports_first_then_stored_ones(appdb, report):
    assert find_report("course_completion", appdb) is not None
    assert find_report("custom_999", appdb) is None
    assert find_report("custom_01", appdb) is None and report_id_of("custom_01") is None
    assert report_id_of("custom_x") is None and report_id_of("customer") is None
    every = [r.type_name for r in all_reports(appdb)]
    assert every == [r.type_name for r in registered_reports()] + [report.type_name]
    assert report.default_sort == "username" and report.row_key == (
        "username", "first_name", "timecreated")  # fmt: skip
    assert [p.name for p in report.params] == ["pattern"]  # companyid comes from the scope


def test_pages_sort_and_stream_one_company(site, source, report):
    scope = TenantScope(company_ids=(site.companies["A"],))
    params = report.bind_company(report.parse_params({}), scope)
    ctx = context(source, scope)
    first = report.page(ctx, params, report.page_request({"page_size": "4", "dir": "desc"}))
    assert names(first.rows) == sorted(ACME, reverse=True)[:4] and first.total == len(ACME)
    third = report.page(ctx, params, report.page_request({"page_size": "4", "page": "3"}))
    assert names(third.rows) == sorted(ACME)[8:]
    streamed = report.stream(ctx, params, report.page_request({"sort": "username"}))
    assert names(streamed) == sorted(ACME)
    narrowed = report.parse_params({"pattern": "mgr%"})
    page = report.page(ctx, narrowed, report.page_request({}))
    assert names(page.rows) == ["mgr_a", "mgr_a_in_b"]


def test_another_company_is_refused_never_bound(site, source, report):
    acme, bolt = site.companies["A"], site.companies["B"]
    scope = TenantScope(company_ids=(acme,))
    with pytest.raises(TenantViolation):
        report.bind_company(report.parse_params({"companyid": str(bolt)}), scope)
    # Even a caller that skips the early check (a dashboard, a schedule) cannot bind Bolt.
    with pytest.raises(TenantViolation):
        report.run(context(source, scope), {"companyid": bolt, "pattern": "%"})
    same = report.bind_company(report.parse_params({"companyid": str(acme)}), scope)
    assert same["companyid"] == acme


def test_a_scope_below_a_company_may_not_run_a_company_safe_report(site, source, report):
    department = TenantScope(company_ids=(site.companies["A"],), department_ids=frozenset({3}))
    with pytest.raises(TenantViolation):
        report.run(context(source, department), report.parse_params({}))


def test_every_company_scope_must_name_one(site, source, report):
    everything = TenantScope(company_ids=None)
    with pytest.raises(FieldError) as raised:
        report.stream(context(source, everything), report.parse_params({}),
                      report.page_request({}))  # fmt: skip
    assert raised.value.field == "companyid"
    chosen = report.parse_params({"companyid": str(site.companies["B"])})
    rows = report.stream(context(source, everything), chosen, report.page_request({}))
    assert "yuri" in names(rows)


def test_bad_values_are_named(report):
    with pytest.raises(FieldError) as raised:
        report.parse_params({"companyid": "abc"})
    assert raised.value.field == "companyid"


def test_the_row_cap_limits_pages_and_exports(site, source, report, monkeypatch):
    monkeypatch.setattr(stored_report, "ROW_CAP", 3)
    scope = TenantScope(company_ids=(site.companies["A"],))
    params = report.bind_company(report.parse_params({}), scope)
    page = report.page(
        context(source, scope), params, report.page_request({"page_size": "2", "page": "2"})
    )
    assert (names(page.rows), page.total) == (["cara"], 3)
    assert names(report.stream(context(source, scope), params, report.page_request({}))) == [
        "ana", "ben", "cara"]  # fmt: skip
