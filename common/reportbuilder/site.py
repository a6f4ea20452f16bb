"""The builder against one Moodle site: the tables it has, a document's preview, a column's
distinct values for a dropdown, and saving a document as a stored report.

Every query here is SQL the validator accepted, run by `run_checked` (read-only, time limit,
row cap) with its values bound.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlglot import exp

from common.access.viewer import Viewer
from common.customreports.store import column_key, save_report
from common.customsql.execute import run_checked
from common.customsql.params import COMPANY_PARAM, declare_params, parse_param_values
from common.customsql.validator import CheckedQuery, validate
from common.errors import FieldError
from common.models.custom import CustomReport
from common.moodle import MoodleSource
from common.reportbuilder.compile import CompiledReport, compile_checked, table_expression
from common.reportbuilder.document import parse_document
from common.reportbuilder.schema import BuilderSchema, builder_schema

if TYPE_CHECKING:
    from common.appdb import AppDB

PREVIEW_ROWS = 20
PREVIEW_TIMEOUT_S = 10.0
VALUES_MAX = 100
VALUES_TIMEOUT_S = 5.0
TABLES_TTL_S = 60.0
VALUE_TYPES = frozenset({"text", "int", "number"})  # a dropdown of dates or flags is no help


def site_schema(source: MoodleSource) -> BuilderSchema:
    """The builder's tables that this site has (IOMAD's only on IOMAD, its SCORM layout…)."""

    def present() -> frozenset[str]:
        with source.engine.connect() as conn:
            names = inspect(conn).get_table_names()
        prefix = source.prefix
        return frozenset(n.removeprefix(prefix) for n in names if n.startswith(prefix))

    tables = source.remembered(("reportbuilder-tables", source.prefix), TABLES_TTL_S, present)
    return builder_schema().restricted_to(tables)


def preview(
    source: MoodleSource,
    compiled: CompiledReport,
    checked: CheckedQuery,
    zone: tzinfo,
    company_id: int | None = None,
) -> dict[str, Any]:
    """The first PREVIEW_ROWS rows as the report's columns show them, its SQL and values; a
    company-safe report's as it runs for ``company_id``."""
    declared = declare_params(checked, compiled.query_params())
    if compiled.company_safe and company_id is None:
        raise FieldError(COMPANY_PARAM, "choose a company in the header to preview this report")
    raw = {COMPANY_PARAM: str(company_id)} if compiled.company_safe else {}
    values = parse_param_values(declared, raw, bound_company=None, zone=zone)
    result = run_checked(source, checked, values, timeout_s=PREVIEW_TIMEOUT_S,
                         max_rows=PREVIEW_ROWS)  # fmt: skip
    types = [c.type for c in compiled.columns]
    rows = [[_shown(v, types[i], zone) for i, v in enumerate(row)] for row in result.rows]
    return {
        "sql": compiled.sql,
        "values": [v.as_json() for v in compiled.values],
        "columns": [c.as_json() for c in compiled.columns],
        "rows": rows,
        "more": result.truncated,
        "elapsed_ms": round(result.elapsed_ms, 1),
    }


def _shown(value: Any, kind: str, zone: tzinfo) -> Any:
    if value is None:
        return None
    if kind == "datetime" and isinstance(value, int | float | Decimal):
        if int(value) <= 0:
            return ""  # Moodle's "never"
        try:
            moment = datetime.fromtimestamp(int(value), UTC).astimezone(zone)
        except (OverflowError, OSError, ValueError):
            return str(value)
        return moment.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int | float | str):
        return value
    return str(value)


def distinct_values(
    source: MoodleSource, schema: BuilderSchema, table: str, column: str
) -> list[Any]:
    """Up to VALUES_MAX distinct values of a column the builder offers (never a credential
    column: the schema has none), in order, through the validator and `run_checked`."""
    info = schema.table(table)
    if info is None:
        raise FieldError("table", f"unknown table {table[:60]!r}")
    found = info.column(column)
    if found is None:
        raise FieldError("column", f"unknown column {column[:60]!r} of {info.label}")
    if found.type not in VALUE_TYPES:
        raise FieldError("column", f"{found.label} is a {found.type} column: no list of values")
    col = exp.column(found.name, table=info.alias, quoted=True)
    table_sql = table_expression(info.name, info.alias)
    query = (
        exp.select(col.copy().as_("value", quoted=True)).distinct().from_(table_sql)
        .where(exp.Not(this=exp.Is(this=col.copy(), expression=exp.Null())))
        .order_by(col.copy()).limit(exp.Literal.number(VALUES_MAX))
    )  # fmt: skip
    checked = validate(query.sql(dialect="mysql"), source.prefix)
    result = run_checked(source, checked, {}, timeout_s=VALUES_TIMEOUT_S, max_rows=VALUES_MAX)
    return [_shown(row[0], found.type, UTC) for row in result.rows]


def stored_columns(compiled: CompiledReport) -> list[dict[str, str]]:
    """The report's columns as the store keeps them, with the kinds the builder knows (a
    Unix-time column is a datetime whatever its label says)."""
    return [{"key": column_key(c.key, i), "label": c.label, "kind": c.kind, "name": c.key}
            for i, c in enumerate(compiled.columns)]  # fmt: skip


def save_built_report(
    appdb: AppDB,
    source: MoodleSource,
    raw_document: Any,
    *,
    report_id: int | None,
    title: str,
    description: str,
    actor: Viewer,
    ip: str | None = None,
) -> CustomReport:
    """Check, compile and store the document (kind "builder"): its SQL runs, exports and is
    scheduled like any stored report's; its filter values are the parameters' defaults. With
    a "viewer's company" filter it is company-safe: company managers run it for theirs."""
    schema = site_schema(source)
    doc = parse_document(raw_document, schema)
    compiled, _ = compile_checked(doc, schema, source.prefix)
    row = save_report(
        appdb, report_id=report_id, kind="builder", title=title, description=description,
        sql_text=compiled.sql, builder_json=json.dumps(doc.as_json()),
        params=compiled.query_params(), company_safe=compiled.company_safe, actor=actor,
        source=source, ip=ip,
    )  # fmt: skip
    with appdb.transaction() as session:
        stored = session.get(CustomReport, row.id)
        if stored is not None:  # deleted meanwhile: nothing to describe
            stored.columns_json = json.dumps(stored_columns(compiled))
    return row
