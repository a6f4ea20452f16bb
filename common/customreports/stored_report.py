"""A stored custom report as a `common.reports.Report`, so the page, data endpoint, every
export, the CLI and the JSON API run it exactly as a prebuilt report.

Its rows come from the validated SQL through `run_checked` (read-only, time limit, row cap):
a page is a sorted window of the result and its total a `count_checked`; an export reads
one window of at most ROW_CAP rows. The SQL is validated again on every run (the whitelist
may have narrowed since it was saved).

Who may run it: holders of `customreports` (site admins); when the report is company-safe,
also company managers (`managereports`: they read their whole company, unlike department
managers and teachers). Every company parameter — `:companyid` first of all — is bound to
the company of the viewer's tenant scope: a different one asked for is an audited 403, never
bound; only a viewer whose scope is every company (a site admin on "All companies") names it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from common.access import capabilities as caps
from common.customreports.store import columns_from_json, params_from_json
from common.customsql.execute import Window, count_checked, run_checked
from common.customsql.params import (
    COMPANY_PARAM,
    QueryParam,
    check_in_scope,
    parse_param_values,
)
from common.customsql.site_dialect import report_dialect
from common.customsql.validator import CheckedQuery, validate
from common.errors import FieldError
from common.ids import parse_id
from common.models.custom import CustomReport
from common.moodle import MoodleSource
from common.reports.base import COLUMN_KINDS, Column, Report, ReportData, RunContext
from common.reports.params import Param
from common.reports.rows import EXPORT_BATCH, PageRequest, RowSource
from common.tenancy import TenantScope, TenantViolation

NAME_PREFIX = "custom_"
RUN_TIMEOUT_S = 30.0
ROW_CAP = 10_000  # the most rows a custom report shows, pages through or exports
_KINDS = {"text": "text", "int": "text", "date": "date", "course": "id"}


def report_name(report_id: int) -> str:
    return f"{NAME_PREFIX}{report_id}"


def report_id_of(name: str) -> int | None:
    """The id in `custom_<id>`, or None for any other name."""
    if not name.startswith(NAME_PREFIX):
        return None
    digits = name[len(NAME_PREFIX) :]
    if not digits.isascii() or not digits.isdigit() or digits != str(int(digits or "0")):
        return None
    try:
        return parse_id(digits, "report")
    except FieldError:
        return None


class StoredRows(RowSource):
    """The validated query's rows: pages as sorted windows, totals counted by the database."""

    def __init__(
        self,
        source: MoodleSource,
        checked: CheckedQuery,
        values: Mapping[str, Any],
        columns: Sequence[Column],
        names: Mapping[str, str],
    ):
        self.source, self.checked, self.values = source, checked, dict(values)
        self.columns, self.names = list(columns), dict(names)

    def _window(self, request: PageRequest, offset: int, limit: int) -> Window:
        sort = self.names.get(request.sort, request.sort)
        descending = request.direction == "desc"
        return Window(sort=sort, descending=descending, offset=offset, limit=limit)

    def _rows(self, found: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        keys = [c.key for c in self.columns]
        if len(found) != len(keys):
            raise FieldError("sql", "the query's columns changed since the report was saved: "
                                    "open it and save it again")  # fmt: skip
        return [dict(zip(keys, (_plain(v) for v in row), strict=True)) for row in rows]

    def page(
        self, request: PageRequest, row_key: Sequence[str]
    ) -> tuple[list[dict[str, Any]], int]:
        total = min(count_checked(self.source, self.checked, self.values,
                                  timeout_s=RUN_TIMEOUT_S), ROW_CAP)  # fmt: skip
        limit = min(request.page_size, ROW_CAP - request.offset)
        if limit <= 0 or request.offset >= total:
            return [], total
        window = self._window(request, request.offset, limit)
        result = run_checked(self.source, self.checked, self.values, timeout_s=RUN_TIMEOUT_S,
                             max_rows=limit, window=window)  # fmt: skip
        return self._rows(result.columns, result.rows), total

    def batches(
        self, request: PageRequest, row_key: Sequence[str], size: int = EXPORT_BATCH
    ) -> Iterator[list[dict[str, Any]]]:
        # One run of at most ROW_CAP rows: windows one after another would run it each time.
        window = self._window(request, 0, ROW_CAP)
        result = run_checked(self.source, self.checked, self.values, timeout_s=RUN_TIMEOUT_S,
                             max_rows=ROW_CAP, window=window)  # fmt: skip
        rows = self._rows(result.columns, result.rows)
        for start in range(0, len(rows), size):
            yield rows[start : start + size]


def _plain(value: Any) -> Any:
    """Values every export and JSON can write: decimals as floats, bytes as text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return value


class StoredReport(Report):
    """One stored row's report; `StoredReport.of(row)` makes its class (a report's shape —
    name, title, columns, parameters — is class-level, as for a registered report)."""

    report_id: ClassVar[int]
    company_safe: ClassVar[bool]
    sql_text: ClassVar[str]
    sql_kind: ClassVar[str]  # "sql" (the site's dialect) or "builder" (compiled to MySQL)
    declared: ClassVar[tuple[QueryParam, ...]]
    result_names: ClassVar[dict[str, str]]  # column key -> the name the SQL gives it

    @classmethod
    def of(cls, row: CustomReport) -> StoredReport:
        stored = columns_from_json(row.columns_json)
        columns = tuple(
            Column(c["key"], c.get("label") or c["key"],
                   str(c["kind"]) if c.get("kind") in COLUMN_KINDS else "text")
            for c in stored
        )  # fmt: skip
        declared = tuple(params_from_json(row.params_json))
        capabilities = (caps.CUSTOM_REPORTS, caps.MANAGE_REPORTS) if row.company_safe else (
            caps.CUSTOM_REPORTS,)  # fmt: skip
        attributes = {
            "type_name": report_name(row.id), "title": row.title,
            "description": row.description or "", "capabilities": capabilities,
            "columns": columns, "params": tuple(_param(p) for p in declared if not _company(p)),
            "default_sort": columns[0].key if columns else "",
            "row_key": tuple(c.key for c in columns), "report_id": row.id,
            "company_safe": bool(row.company_safe), "sql_text": row.sql_text,
            "sql_kind": row.kind,
            "declared": declared,
            "result_names": {c["key"]: c.get("name") or c["label"] for c in stored},
        }  # fmt: skip
        made = type(f"StoredReport{row.id}", (cls,), attributes)
        return made()  # type: ignore[no-any-return]

    def parse_params(self, raw: Mapping[str, str]) -> dict[str, Any]:
        """Each value checked for its type (a FieldError names it); required values are
        asked for when the report runs, so the page can show its filter bar first."""
        optional = [_optional(p) for p in self.declared if not _company(p)]
        parsed = parse_param_values(optional, raw, bound_company=None)
        params: dict[str, Any] = {}
        for param in self.declared:
            text = (raw.get(param.name) or "").strip()
            if _company(param):
                params[param.name] = _company_id(param, text) if text else None
            elif param.type == "date" and parsed[param.name] is not None:
                params[param.name] = date.fromisoformat(text or str(param.default))
            else:
                params[param.name] = parsed[param.name]
        return params

    def bind_company(self, params: Mapping[str, Any], scope: TenantScope) -> dict[str, Any]:
        """`params` with every company parameter fixed to the scope's one company; asking
        for another is an audited 403. A company-safe report reads a whole company: a scope
        narrowed below one (a department, some courses) may not run it."""
        bound = dict(params)
        if self.company_safe and not scope.whole:
            raise TenantViolation(scope.company_id,
                                  f"{self.title} reads a whole company's data")  # fmt: skip
        if scope.company_ids is None:
            return bound
        company = scope.company_id
        for param in self.declared:
            if not _company(param):
                continue
            asked = bound.get(param.name)
            if company is None:
                if asked is None or asked not in scope.company_ids:
                    raise FieldError(COMPANY_PARAM, "choose one company to run this report",
                                     status=400)  # fmt: skip
                continue
            if asked is not None and asked != company:
                raise TenantViolation(asked, f"{param.label} is fixed to your company "
                                             f"({company}) and cannot be changed")  # fmt: skip
            bound[param.name] = company
        return bound

    def run(self, ctx: RunContext, params: Mapping[str, Any]) -> ReportData:
        bound = self.bind_company(params, ctx.scope)
        dialect = report_dialect(ctx.source, self.sql_kind)
        checked = validate(self.sql_text, ctx.source.prefix, dialect)
        has_company = any(_company(p) for p in self.declared)
        for param in self.declared:
            if _company(param) and param.required and bound.get(param.name) is None:
                raise FieldError(param.name, "choose a company (the company selector) to run "
                                             "this report", status=400)  # fmt: skip
        raw = {name: _as_raw(value) for name, value in bound.items()}
        company = ctx.scope.company_id if ctx.scope.company_ids is not None else None
        values = parse_param_values(self.declared, raw, zone=ctx.zone,
                                    bound_company=company if has_company else None)  # fmt: skip
        check_in_scope(self.declared, values, source=ctx.source, scope=ctx.scope)
        rows = StoredRows(ctx.source, checked, values, self.columns, self.result_names)
        return ReportData(rows=rows)

    def stream(
        self, ctx: RunContext, params: Mapping[str, Any], request: PageRequest
    ) -> Iterator[dict[str, Any]]:
        # Checked now, not at the first row: an export must not fail after its headers.
        data = self.run(ctx, params)
        return self._streamed(data, ctx, request)

    def _streamed(
        self, data: ReportData, ctx: RunContext, request: PageRequest
    ) -> Iterator[dict[str, Any]]:
        from common.reports.base import present

        for batch in data.rows.batches(request, self.row_key):
            yield from present(self, batch, ctx)


def _company(param: QueryParam) -> bool:
    return param.type == "company"


def _optional(param: QueryParam) -> QueryParam:
    return QueryParam(param.name, param.type, param.label, False, param.default)


def _company_id(param: QueryParam, text: str) -> int:
    try:
        return parse_id(text, param.name)
    except FieldError as exc:
        raise FieldError(param.name, exc.reason, status=400) from None


def _as_raw(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _param(declared: QueryParam) -> Param:
    """The report-framework view of a declared parameter: the filter bar's control, the API's
    description and the CLI's `--param` name."""
    kind = _KINDS.get(declared.type, "text")
    if kind == "id" and declared.name != "course":
        kind = "text"  # only `course` has the filter bar's list of course names

    def parse(raw: str, param: Param) -> Any:
        optional = _optional(declared)
        value = parse_param_values([optional], {declared.name: raw}, bound_company=None)
        return date.fromisoformat(raw) if declared.type == "date" else value[declared.name]

    default: Any = None
    if declared.default:
        default = Param(declared.name, declared.label, kind, parse).parse(declared.default)
    help_text = {"text": "text", "int": "a whole number", "date": "a day, YYYY-MM-DD",
                 "course": "a course id"}.get(declared.type, "")  # fmt: skip
    if declared.required:
        help_text += " (required)"
    return Param(declared.name, declared.label, kind, parse, default, help=help_text)
