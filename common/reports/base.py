"""The report registry and the shapes every report shares.

A report is one module with one `@register`ed class: its name (a public contract: CLI, API
and schedules use it), who may run it, its columns and its parameters, and `rows()` — the
rows for a tenant scope as a `RowSource` that the page, the data endpoint, every export
format, the CLI and the API page, sort and stream the same way. Adding a report is adding
one module to `common/reports/` and importing it in `__init__`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.errors import FieldError
from common.moodle import MoodleSource, SiteFeatures
from common.reports.params import Param, check_range
from common.reports.rows import PageRequest, RowSource
from common.tenancy import TenantScope
from common.timezones import SITE_DEFAULT, utc_offset_s

if TYPE_CHECKING:
    from common.appdb import AppDB

# What a column holds, for the table, the JSON API and each export format:
#   text, int, float; percent (0–100, one decimal); duration (seconds);
#   date (datetime.date); datetime (a Unix time from Moodle, shown in the viewer's timezone).
COLUMN_KINDS = ("text", "int", "float", "percent", "duration", "date", "datetime")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"
    sortable: bool = True
    # A filter this column's value drills into: the row's `<drill>_id` becomes `?<drill>=`.
    drill: str | None = None
    # The column names a user or a course: the cell links to its page (`<links_to>_id`).
    links_to: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ValueError(f"column {self.key}: kind {self.kind!r} is not one of {COLUMN_KINDS}")
        if self.links_to not in (None, "user", "course"):
            raise ValueError(f"column {self.key}: links_to is 'user', 'course' or None")

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "type": self.kind, "kind": self.kind,
                "sortable": self.sortable}  # fmt: skip


@dataclass(frozen=True)
class RunContext:
    """Where and for whom a report runs: the Moodle DB, the app DB (for the aggregator's
    figures), the tenant scope, the time it runs as of and the viewer's Moodle timezone."""

    source: MoodleSource
    scope: TenantScope
    now: int
    timezone: str | None = None
    appdb: AppDB | None = None

    @property
    def tz_offset_s(self) -> int:
        return utc_offset_s(self.timezone, self.now)

    @property
    def zone(self) -> ZoneInfo:
        name = "UTC" if self.timezone in (None, "", SITE_DEFAULT) else str(self.timezone)
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def require_appdb(self) -> AppDB:
        if self.appdb is None:
            raise RuntimeError("this report reads the aggregator's figures: pass the app DB")
        return self.appdb


@dataclass(frozen=True)
class ReportData:
    """What `Report.run` returns. The chart and KPIs are computed only when a page asks:
    an export needs the rows alone.

    A chart is {type: bar|line|pie, labels, series: [{label, data}], drill?: {param, values,
    report?}}: clicking label i filters `report` (default: this one) by param=values[i]. A KPI
    is {key, label, value, kind}.
    """

    rows: RowSource
    chart: Callable[[], dict[str, Any] | None] | None = None
    kpis: Callable[[], list[dict[str, Any]]] | None = None


@dataclass
class ReportPage:
    """One page of a report as a viewer sees it, with everything a client needs to ask for
    the next one."""

    report: Report
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    total: int
    request: PageRequest
    chart: dict[str, Any] | None = None
    kpis: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self) -> list[Column]:
        return list(self.report.columns)

    def as_json(self) -> dict[str, Any]:
        size = self.request.page_size
        return {
            "report": self.report.type_name,
            "title": self.report.title,
            "columns": [c.as_json() for c in self.report.columns],
            "rows": [json_row(row) for row in self.rows],
            "chart": self.chart or {},
            "kpis": self.kpis,
            "params": {k: json_value(v) for k, v in self.params.items()},
            "pagination": {
                "page": self.request.page, "page_size": size, "total": self.total,
                "pages": max(1, -(-self.total // size)),
            },
            "sort": {"key": self.request.sort, "direction": self.request.direction},
        }  # fmt: skip


class Report(ABC):
    type_name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[tuple[str, ...]]
    columns: ClassVar[tuple[Column, ...]]
    params: ClassVar[tuple[Param, ...]] = ()
    # Default order, and the columns that make a row unique (the tie-break of every sort).
    default_sort: ClassVar[str]
    default_direction: ClassVar[str] = "asc"
    row_key: ClassVar[tuple[str, ...]]

    def enabled(self, features: SiteFeatures) -> bool:
        return True

    def parse_params(self, raw: Mapping[str, str]) -> dict[str, Any]:
        """Validate raw strings (query string, form, CLI, schedule); FieldError (400) names
        the parameter. Unknown names are ignored: paging and sort travel in the same query."""
        params = {p.name: p.parse(raw.get(p.name)) for p in self.params}
        check_range(params)
        return params

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns if c.key == key), None)

    @abstractmethod
    def run(self, ctx: RunContext, params: Mapping[str, Any]) -> ReportData:
        """The report's rows in scope (a source that pages, sorts and streams them), and its
        chart and headline figures over the same filters."""

    def page(
        self,
        ctx: RunContext,
        params: Mapping[str, Any],
        request: PageRequest,
        *,
        summary: bool = True,
    ) -> ReportPage:
        """One page of rows; with `summary`, the chart and KPIs too (a client paging or
        sorting the same filters already has them, and each can cost a pass over the data)."""
        data = self.run(ctx, params)
        found, total = data.rows.page(request, self.row_key)
        return ReportPage(
            report=self, params=dict(params), rows=present(self, found, ctx), total=total,
            request=request, chart=data.chart() if summary and data.chart else None,
            kpis=data.kpis() if summary and data.kpis else [],
        )  # fmt: skip

    def stream(
        self, ctx: RunContext, params: Mapping[str, Any], request: PageRequest
    ) -> Iterator[dict[str, Any]]:
        """Every row in the requested order, a batch at a time (exports: memory stays flat)."""
        for batch in self.run(ctx, params).rows.batches(request, self.row_key):
            yield from present(self, batch, ctx)

    def page_request(self, raw: Mapping[str, str]) -> PageRequest:
        """`page`, `page_size`, `sort` and `dir` of a query string, checked against this report."""
        return PageRequest.parse(raw, self)


def present(report: Report, rows: list[dict[str, Any]], ctx: RunContext) -> list[dict[str, Any]]:
    """Rows as viewers get them: Unix times as datetimes in the viewer's timezone."""
    stamped = [c.key for c in report.columns if c.kind == "datetime"]
    if not stamped:
        return rows
    zone = ctx.zone
    for row in rows:
        for key in stamped:
            value = row.get(key)
            if isinstance(value, int | float):
                row[key] = datetime.fromtimestamp(value, UTC).astimezone(zone) if value else None
    return rows


def json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: json_value(v) for k, v in row.items()}


_REGISTRY: dict[str, Report] = {}


def register(report_class: type[Report]) -> type[Report]:
    for column in report_class.columns:
        if column.key != column.key.lower() or not column.key.replace("_", "").isalnum():
            raise ValueError(
                f"{report_class.type_name}: column key {column.key!r} is not snake_case"
            )
    _REGISTRY[report_class.type_name] = report_class()
    return report_class


def get_report(type_name: str) -> Report | None:
    return _REGISTRY.get(type_name)


def registered_reports() -> list[Report]:
    return list(_REGISTRY.values())


def require_report(type_name: str) -> Report:
    report = get_report(type_name)
    if report is None:
        raise FieldError("report", f"no report named {type_name!r}", status=404)
    return report
