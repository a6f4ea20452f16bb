"""Running a report for the signed-in viewer: the one path the pages, the data endpoint and
the exports share (the JSON API has its own caller but the same checks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.access.viewer import Viewer
from common.customreports.catalog import all_reports, find_report
from common.customreports.stored_report import StoredReport
from common.reports import PageRequest, Report, RunContext
from common.reports.filters import describe_filters
from common.tenancy import NotFound, TenantScope, TenantViolation
from web.auth.guards import current_viewer, request_scope, web_context


def runnable(report: Report, viewer: Viewer) -> bool:
    return report.enabled(web_context().moodle.features()) and viewer.can_any(report.capabilities)


def reports_for(viewer: Viewer) -> list[Report]:
    return [r for r in all_reports(web_context().appdb) if runnable(r, viewer)]


def report_for(name: str, viewer: Viewer) -> Report:
    """The report `name` if this viewer may run it: NotFound (404) for no such report on this
    site, TenantViolation (403, audited) for one their capabilities do not reach."""
    report = find_report(name, web_context().appdb)
    if report is None or not report.enabled(web_context().moodle.features()):
        raise NotFound(f"No report named {name[:64]!r}.")
    if not viewer.can_any(report.capabilities):
        # A stored report's title is its author's: not told to whoever may not run it.
        what = "this report" if isinstance(report, StoredReport) else f"the {report.title} report"
        raise TenantViolation(None, f"You may not run {what}.")
    return report


def run_context(scope: TenantScope, viewer: Viewer) -> RunContext:
    ctx = web_context()
    return RunContext(source=ctx.moodle, scope=scope, now=int(ctx.clock()),
                      timezone=viewer.timezone, appdb=ctx.appdb)  # fmt: skip


@dataclass(frozen=True)
class ReportRequest:
    report: Report
    ctx: RunContext
    params: dict[str, Any]
    page: PageRequest


def parse_request(
    name: str, args: Mapping[str, str], viewer: Viewer, scope: TenantScope
) -> ReportRequest:
    """Everything checked before a row is read: the report, the viewer's right to it, the
    tenant scope, the parameters and the page — so a streamed export never fails halfway."""
    report = report_for(name, viewer)
    params = report.parse_params(args)
    if isinstance(report, StoredReport):  # its company is the scope's: another one is a 403
        params = report.bind_company(params, scope)
    page = report.page_request(args)
    return ReportRequest(report, run_context(scope, viewer), params, page)


def page_json(wanted: ReportRequest, *, summary: bool = True) -> dict[str, Any]:
    """One page as JSON, for the data endpoint and the API alike: rows, columns, chart, KPIs
    (unless `summary` is off), pagination, sort and the applied filters by name."""
    page = wanted.report.page(wanted.ctx, wanted.params, wanted.page, summary=summary)
    result = page.as_json()
    described = describe_filters(wanted.report, wanted.ctx, wanted.params)
    result["filters"] = [{"label": label, "value": value} for label, value in described]
    return result


def request_for_viewer(name: str, args: Mapping[str, str]) -> ReportRequest:
    return parse_request(name, args, current_viewer(), request_scope())
