"""Saving, listing and deleting stored custom reports.

A report is saved only when the validator accepts its SQL and every placeholder is declared;
its result's columns are then learned by running it for a handful of rows under a short time
limit (their kinds guessed from the values and names, e.g. `timecreated` holds a Unix time).
Every create, change and delete writes an audit entry in the same transaction, naming the
report's title and what changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from common.access.viewer import Viewer
from common.audit import record_audit
from common.customsql.execute import Window, run_checked
from common.customsql.params import (
    COMPANY_PARAM,
    QueryParam,
    declare_params,
    parse_param_values,
)
from common.customsql.site_dialect import report_dialect
from common.customsql.validator import CheckedQuery, validate
from common.errors import FieldError, raise_all
from common.models.base import utcnow
from common.models.custom import REPORT_KINDS, CustomReport
from common.moodle import MoodleSource
from common.tenancy import NotFound

if TYPE_CHECKING:
    from common.appdb import AppDB

TITLE_MAX = 200
DESCRIPTION_MAX = 2000
SQL_MAX = 50_000
LEARN_ROWS = 5
LEARN_TIMEOUT_S = 5.0
OBJECT_TYPE = "custom_report"
UNIX_TIME_MIN = 100_000_000  # 1973: smaller whole numbers are counts, not Moodle times
# Moodle's Unix-time columns that neither start with `time` nor end with `date`/`time`.
_TIME_NAMES = frozenset({"lastaccess", "firstaccess", "lastlogin", "currentlogin", "lastaccessed",
                         "enrolstartdate", "startdate", "enddate", "timeaccess"})  # fmt: skip


def params_from_json(text: str | None) -> list[QueryParam]:
    return [QueryParam.from_json(p) for p in json.loads(text or "[]")]


def columns_from_json(text: str | None) -> list[dict[str, str]]:
    return list(json.loads(text or "[]"))


def check_sql(sql_text: str, prefix: str, dialect: str = "mysql") -> CheckedQuery:
    """The validator's verdict, with a size limit first (QueryRejected names the place);
    ``dialect`` is the one the SQL is written in (common.customsql.site_dialect)."""
    if len(sql_text) > SQL_MAX:
        raise FieldError("sql", f"at most {SQL_MAX:,} characters")
    if not sql_text.strip():
        raise FieldError("sql", "write one SELECT statement")
    return validate(sql_text, prefix, dialect)


def save_report(
    appdb: AppDB,
    *,
    report_id: int | None,
    kind: str,
    title: str,
    description: str,
    sql_text: str,
    builder_json: str | None,
    params: Sequence[QueryParam],
    company_safe: bool,
    actor: Viewer,
    source: MoodleSource | None = None,
    ip: str | None = None,
) -> CustomReport:
    """Create (`report_id` None) or change a report. Every problem found is raised at once
    (FieldErrors: title, description, sql with its line and column, params, company_safe);
    nothing is written then. With `source`, the result's columns are learned by a short run."""
    title, description = title.strip(), description.strip()
    errors: list[FieldError] = []
    if kind not in REPORT_KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(REPORT_KINDS)}"))
    if not title:
        errors.append(FieldError("title", "give the report a title"))
    elif len(title) > TITLE_MAX:
        errors.append(FieldError("title", f"at most {TITLE_MAX} characters"))
    if len(description) > DESCRIPTION_MAX:
        errors.append(FieldError("description", f"at most {DESCRIPTION_MAX} characters"))
    checked: CheckedQuery | None = None
    declared: list[QueryParam] = []
    try:
        dialect = report_dialect(source, kind) if source else "mysql"
        checked = check_sql(sql_text, source.prefix if source else "mdl_", dialect)
        declared = declare_params(checked, params)
    except FieldError as exc:  # QueryRejected is one
        errors.append(exc)
    if checked is not None and company_safe and COMPANY_PARAM not in checked.params:
        errors.append(FieldError("company_safe", f"a company-safe report must use :{COMPANY_PARAM} "
                                 "(bound to the viewer's company) to limit its rows"))  # fmt: skip
    raise_all(errors)
    assert checked is not None
    columns = learn_columns(source, checked, declared) if source is not None else None
    with appdb.transaction() as session:
        if report_id is None:
            row = CustomReport(kind=kind, createdby=actor.user_id, sql_text="")
            session.add(row)
            before: dict[str, Any] = {}
        else:
            found = session.get(CustomReport, report_id, with_for_update=True)
            if found is None:
                raise NotFound(f"no custom report {report_id}")
            row, before = found, _audited(found)
        row.kind, row.title, row.description = kind, title, description
        row.sql_text, row.builder_json = sql_text, builder_json
        row.params_json = json.dumps([p.as_json() for p in declared])
        if columns is not None:
            row.columns_json = json.dumps(columns)
        row.company_safe, row.modifiedby, row.timemodified = company_safe, actor.user_id, utcnow()
        session.flush()
        after = _audited(row)
        details: dict[str, Any] = {"title": title, "kind": kind, "company_safe": company_safe}
        if before:
            details["changed"] = sorted(k for k in after if after[k] != before[k])
            if before["title"] != title:
                details["previous_title"] = before["title"]
        else:
            details["tables"] = sorted(checked.tables)
        record_audit(session, actor_id=actor.user_id,
                     action="custom_report_created" if not before else "custom_report_changed",
                     object_type=OBJECT_TYPE, object_id=row.id, ip=ip, details=details)  # fmt: skip
    return row


def _audited(row: CustomReport) -> dict[str, Any]:
    return {"title": row.title, "description": row.description, "sql": row.sql_text,
            "builder": row.builder_json, "params": row.params_json,
            "company_safe": bool(row.company_safe), "kind": row.kind}  # fmt: skip


def get_report_row(appdb: AppDB, report_id: int) -> CustomReport | None:
    with appdb.transaction() as session:
        return session.get(CustomReport, report_id)


def list_reports(appdb: AppDB) -> list[CustomReport]:
    """Every stored report, by title."""
    with appdb.transaction() as session:
        query = select(CustomReport).order_by(CustomReport.title, CustomReport.id)
        return list(session.scalars(query))


def delete_report(
    appdb: AppDB, report_id: int, actor: Viewer, ip: str | None = None
) -> CustomReport:
    with appdb.transaction() as session:
        row = session.get(CustomReport, report_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no custom report {report_id}")
        session.delete(row)
        record_audit(session, actor_id=actor.user_id, action="custom_report_deleted",
                     object_type=OBJECT_TYPE, object_id=report_id, ip=ip,
                     details={"title": row.title, "kind": row.kind})  # fmt: skip
    return row


def learning_values(declared: Sequence[QueryParam]) -> dict[str, Any]:
    """What to bind while learning the columns: each default, else NULL (no rows is fine:
    the columns are still known)."""
    optional = [replace(p, required=False) for p in declared]
    return parse_param_values(optional, {}, bound_company=None)


def learn_columns(
    source: MoodleSource, checked: CheckedQuery, declared: Sequence[QueryParam]
) -> list[dict[str, str]]:
    """The result's columns as [{key, label, kind, name}], from a run of a few rows."""
    window = Window(sort=None, descending=False, offset=0, limit=LEARN_ROWS)
    try:
        result = run_checked(source, checked, learning_values(declared), window=window,
                             timeout_s=LEARN_TIMEOUT_S, max_rows=LEARN_ROWS)  # fmt: skip
    except DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0][:300] if exc.orig else type(exc).__name__
        raise FieldError("sql", f"the database refused it: {reason}") from None
    return describe_columns(result.columns, result.rows)


def describe_columns(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, str]]:
    seen: dict[str, int] = {}
    columns = []
    for index, name in enumerate(names):
        base = column_key(name, index)
        seen[base] = seen.get(base, 0) + 1
        key = base if seen[base] == 1 else f"{base}_{seen[base]}"
        values = [row[index] for row in rows if index < len(row)]
        columns.append({"key": key, "label": name, "kind": guess_kind(name, values),
                        "name": name})  # fmt: skip
    return columns


def column_key(name: str, index: int) -> str:
    """A snake_case key for a result column: `Course name` → `course_name`."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not key:
        return f"column_{index + 1}"
    return f"c_{key}" if key[0].isdigit() else key


def guess_kind(name: str, values: Sequence[Any]) -> str:
    """The column kind (common.reports.base.COLUMN_KINDS) its values and name suggest: whole
    numbers under a time-like name (`timecreated`, `last_completed`, `startdate`) that look
    like Unix times are `datetime`, shown in the viewer's timezone."""
    lowered = name.lower()
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, datetime) for v in present):
        return "datetime"
    if present and all(isinstance(v, date) for v in present):
        return "date"
    if present and not all(isinstance(v, int | float | Decimal) for v in present):
        return "text"
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in present)
    if "spent" in lowered or "duration" in lowered or lowered.endswith("seconds"):
        return "duration"
    if whole and _timeish(lowered) and all(v == 0 or v > UNIX_TIME_MIN for v in present):
        return "datetime"
    if lowered.endswith(("pct", "percent", "percentage")):
        return "percent"
    if not present:
        return "text"
    return "int" if whole else "float"


def _timeish(name: str) -> bool:
    return (name in _TIME_NAMES or name.startswith("time") or name.endswith(("date", "time", "_at"))
            or any(word in name for word in ("completed", "modified", "created", "access",
                                             "login", "started", "finished")))  # fmt: skip
