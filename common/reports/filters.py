"""Applied filters as people read them: labels and names, not ids (for chips, the PDF and
XLSX headers and schedule descriptions). Names are read through the tenant scope, so a
filter on someone else's course shows its id, never its name. Cohorts are site-wide rows
(the scope does not filter them), so a cohort is named only when it has a member the viewer
may see — the rule of the filter bar's cohort options — else shown by its id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from common.reports.base import Report, RunContext
from common.tenancy import scoped


def describe_filters(
    report: Report, ctx: RunContext, params: Mapping[str, Any]
) -> list[tuple[str, str]]:
    described: list[tuple[str, str]] = []
    if ctx.scope.company_ids is not None and len(ctx.scope.company_ids) == 1:
        described.append(("Company", _name(ctx, "company", ctx.scope.company_ids[0])))
    for param in report.params:
        value = params.get(param.name)
        if value is None:
            continue
        if param.kind == "id":
            shown = _name(ctx, param.name, value)
        elif param.kind == "choice":
            shown = param.choice_label(value)
        else:
            shown = str(value)
        described.append((param.label, shown))
    return described


_NAME_COLUMNS = {"course": ("course", "fullname"), "cohort": ("cohort", "name"),
                 "company": ("company", "name"), "user": ("user", "username")}  # fmt: skip


def _name(ctx: RunContext, kind: str, object_id: int) -> str:
    if kind not in _NAME_COLUMNS:
        return str(object_id)
    table_name, column = _NAME_COLUMNS[kind]
    table = getattr(ctx.source.tables, table_name)
    query = select(table.c[column]).where(table.c.id == object_id)
    if kind == "cohort":
        members = ctx.source.tables.cohort_members
        query = query.where(table.c.id.in_(select(members.c.cohortid)))
    query = scoped(query, ctx.scope, ctx.source)
    with ctx.source.engine.connect() as conn:
        found = conn.scalar(query)
    return str(found) if found is not None else f"#{object_id}"
