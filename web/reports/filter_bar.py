"""The filter bar of a report page or a dashboard, and what the browser needs to drill down.

One control per declared parameter: a choice is a select, a course or cohort a select of the
names the viewer may see (read through the tenant scope — never ids as labels), `q` a search
box, a date a date input. The company selector lists the companies the viewer may switch
between (every company for a site admin). `view_meta` tells the page's script where a drill
on a column or a chart lands: the detail report of that dimension when the viewer may run it,
else the same report filtered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import url_for
from sqlalchemy import select

from common.access.viewer import Viewer
from common.moodle import MoodleSource
from common.reports import Param, Report
from common.reports.learners import SITE_COURSE_ID
from common.tenancy import TenantScope, company_choices, scoped, sees_every_company
from web.reports.running import reports_for

OPTIONS_MAX = 1000  # a select longer than this is no use; the chip still names the filter
# The report a drill on this dimension lands on, when the viewer may run it.
DETAIL_REPORTS = {"course": "course_progress"}
_ALL = {"course": "All courses", "cohort": "All cohorts"}


@dataclass(frozen=True)
class Control:
    name: str
    label: str
    kind: str  # select | search | date | hidden
    value: str
    default: str = ""
    options: tuple[tuple[str, str], ...] = ()
    help: str = ""


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def controls_for(
    params: Iterable[Param], values: Mapping[str, Any], scope: TenantScope, source: MoodleSource
) -> list[Control]:
    """The filter bar for these parameters at these (parsed) values."""
    controls = []
    for param in params:
        value, default = as_text(values.get(param.name)), as_text(param.default)
        common: dict[str, Any] = {"name": param.name, "label": param.label, "value": value,
                                  "default": default, "help": param.help}  # fmt: skip
        if param.kind == "choice":
            options = tuple((str(c), _choice_label(param, c)) for c in param.choices)
            if param.default is None:  # no choice made: every row
                options = (("", "All"), *options)
            controls.append(Control(kind="select", options=options, **common))
        elif param.kind == "id" and param.name in _ALL:
            named = _named_options(param.name, scope, source)
            if value and value not in {v for v, _ in named}:
                named.append((value, f"{param.label} #{value}"))  # asked for, not visible
            options = (("", _ALL[param.name]),) + tuple(named)
            controls.append(Control(kind="select", options=options, **common))
        elif param.kind == "id":  # no names to offer: kept in the URL, shown as a chip
            controls.append(Control(kind="hidden", **common))
        elif param.kind == "date":
            controls.append(Control(kind="date", **common))
        else:
            controls.append(Control(kind="search", **common))
    return controls


def _choice_label(param: Param, choice: Any) -> str:
    return param.choice_label(choice)


def _named_options(kind: str, scope: TenantScope, source: MoodleSource) -> list[tuple[str, str]]:
    t = source.tables
    if kind == "course":
        query = (
            select(t.course.c.id, t.course.c.fullname)
            .where(t.course.c.id != SITE_COURSE_ID)
            .order_by(t.course.c.fullname, t.course.c.id)
        )
    else:  # cohorts with at least one member the viewer may see
        members = select(t.cohort_members.c.cohortid)
        query = (
            select(t.cohort.c.id, t.cohort.c.name)
            .where(t.cohort.c.id.in_(members))
            .order_by(t.cohort.c.name, t.cohort.c.id)
        )
    with source.engine.connect() as conn:
        rows = conn.execute(scoped(query.limit(OPTIONS_MAX), scope, source)).all()
    return [(str(int(row[0])), str(row[1])) for row in rows]


def company_options(viewer: Viewer, source: MoodleSource) -> list[tuple[int, str]]:
    """(id, name) of the companies this viewer may pick on a report or dashboard."""
    if not viewer.has_iomad:
        return []
    if not sees_every_company(viewer):
        return company_choices(source, viewer)
    company = source.tables.company
    query = select(company.c.id, company.c.name).order_by(company.c.name, company.c.id)
    with source.engine.connect() as conn:
        rows = conn.execute(scoped(query, TenantScope(company_ids=None), source)).all()
    return [(int(r.id), str(r.name)) for r in rows]


def view_meta(shown: Iterable[Report], viewer: Viewer) -> dict[str, Any]:
    """For the page's script: the reports this viewer may open (their page and parameters,
    so a drill carries only the filters its target takes), each shown report's column
    drills with the report they land on, and its columns that link to a user or course page."""
    available = {r.type_name: r for r in reports_for(viewer)}
    drills: dict[str, dict[str, dict[str, Any]]] = {}
    for report in shown:
        drills[report.type_name] = {
            c.key: {"param": c.drill, "report": _drill_target(report, c.drill, available)}
            for c in report.columns
            if c.drill
        }
    links = {r.type_name: {c.key: c.links_to for c in r.columns if c.links_to} for r in shown}
    return {
        "reports": {
            name: {
                "url": url_for("reports.page", name=name),
                "title": r.title,
                "params": [p.name for p in r.params],
            }  # fmt: skip
            for name, r in available.items()
        },
        "drills": drills,
        # Cells naming a user or course link to its page: the address up to the id.
        "links": links,
        "pages": {"user": url_for("people.user", user_id=1)[:-1],
                  "course": url_for("people.course", course_id=1)[:-1]},
    }  # fmt: skip


def _drill_target(report: Report, param: str, available: Mapping[str, Report]) -> str | None:
    if param == "company":
        return None  # the same page for that company (`?company=`)
    detail = available.get(DETAIL_REPORTS.get(param, ""))
    if detail is not None and any(p.name == param for p in detail.params):
        return detail.type_name
    if any(p.name == param for p in report.params):
        return report.type_name
    return None
