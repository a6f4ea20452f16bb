"""Custom SQL reports: the list, the editor (check, preview, save) and delete, for holders of
`customreports` who are site admins (the SQL reads every company's rows).

Saving goes through `common.customreports.store` (validated, columns learned, audited); a
rejected query is never saved and the form comes back with every input kept and the error —
with its line and column — beside the SQL box. A saved report runs as `/reports/custom_<id>`
like any other report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.customreports.store import (
    check_sql,
    delete_report,
    describe_columns,
    get_report_row,
    learning_values,
    list_reports,
    params_from_json,
    save_report,
)
from common.customreports.stored_report import report_name
from common.customsql.execute import QueryResult, Window, run_checked
from common.customsql.params import (
    COMPANY_PARAM,
    PARAM_TYPES,
    QueryParam,
    declare_params,
    param_options,
    parse_param_values,
)
from common.customsql.site_dialect import written_dialect
from common.customsql.validator import CheckedQuery, QueryRejected
from common.errors import FieldError
from common.models.custom import CustomReport
from common.moodle.names import display_names
from common.tenancy import SITE, NotFound
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.errors import reasons_by_field
from web.navigation import add_nav_item
from web.runs.execution import form_slot

bp = Blueprint("customreports", __name__, url_prefix="/custom-reports",
               template_folder="templates")  # fmt: skip
PREVIEW_ROWS = 20
PREVIEW_TIMEOUT_S = 5.0
EDITORS = (caps.CUSTOM_REPORTS,)


class CustomReportForm(FlaskForm):
    """CSRF only: the fields are read by `_draft`."""


@dataclass
class Draft:
    """What the form holds, exactly as typed (kept on every error)."""

    title: str = ""
    description: str = ""
    sql: str = ""
    company_safe: bool = False
    params: list[QueryParam] = field(default_factory=list)
    preview_company: str = ""


@dataclass
class Outcome:
    errors: list[FieldError] = field(default_factory=list)
    checked: CheckedQuery | None = None
    declared: list[QueryParam] = field(default_factory=list)
    preview: QueryResult | None = None

    def by_field(self) -> dict[str, list[str]]:
        return reasons_by_field(self.errors)


def _draft() -> tuple[Draft, list[FieldError]]:
    form = request.form
    params, errors = [], []
    for name in form.getlist("param_name")[:100]:
        kind = form.get(f"param_type_{name}", "text")
        label = form.get(f"param_label_{name}", "").strip() or None
        required = form.get(f"param_required_{name}") == "1"
        default = form.get(f"param_default_{name}", "").strip() or None
        typed = {"name": name, "type": kind, "label": label, "required": required,
                 "default": default}  # fmt: skip
        try:
            params.append(QueryParam.from_json(typed))
        except FieldError as exc:
            errors.append(exc)
            if name.isidentifier():  # kept as typed, to be corrected (never saved like this)
                kind = kind if kind in PARAM_TYPES else "text"
                params.append(QueryParam(name, kind, label or name, required, default))
    draft = Draft(title=form.get("title", ""), description=form.get("description", ""),
                  sql=form.get("sql", ""), company_safe=form.get("company_safe") == "1",
                  params=params, preview_company=form.get("preview_company", ""))  # fmt: skip
    return draft, errors


def _draft_of(row: CustomReport) -> Draft:
    params = params_from_json(row.params_json)
    return Draft(title=row.title, description=row.description or "", sql=row.sql_text,
                 company_safe=bool(row.company_safe), params=params)  # fmt: skip


def _check(draft: Draft, outcome: Outcome) -> None:
    """The validator's verdict and the parameter table for the SQL as typed."""
    try:
        moodle = web_context().moodle
        outcome.checked = check_sql(draft.sql, moodle.prefix, written_dialect(moodle))
        outcome.declared = declare_params(outcome.checked, draft.params)
    except FieldError as exc:
        outcome.errors.extend(exc.errors)
        outcome.declared = list(draft.params)


def _preview(draft: Draft, outcome: Outcome) -> None:
    """The first rows with each parameter's default (the chosen company for `:companyid`)."""
    if outcome.checked is None:
        return
    source = web_context().moodle
    try:
        values = learning_values(
            [p for p in outcome.declared if p.name != COMPANY_PARAM]
        ) | _preview_company(draft, outcome.declared)
        window = Window(sort=None, limit=PREVIEW_ROWS)
        with form_slot("sql"):
            outcome.preview = run_checked(source, outcome.checked, values, window=window,
                                          timeout_s=PREVIEW_TIMEOUT_S,
                                          max_rows=PREVIEW_ROWS)  # fmt: skip
    except FieldError as exc:
        outcome.errors.extend(exc.errors)


def _preview_company(draft: Draft, declared: list[QueryParam]) -> dict[str, Any]:
    companies = [p for p in declared if p.name == COMPANY_PARAM]
    if not companies:
        return {}
    raw = {COMPANY_PARAM: draft.preview_company}
    optional = QueryParam(COMPANY_PARAM, "company", companies[0].label, False)
    return parse_param_values([optional], raw, bound_company=None)


def _company_choices(outcome: Outcome) -> list[tuple[str, str]]:
    if not any(p.name == COMPANY_PARAM for p in outcome.declared):
        return []
    company = QueryParam(COMPANY_PARAM, "company", "Company")
    return param_options(company, web_context().moodle, SITE)


def _editor(
    draft: Draft, outcome: Outcome, *, row: CustomReport | None, status: int = 200
) -> tuple[str, int]:
    rejected = next((e for e in outcome.errors if isinstance(e, QueryRejected)), None)
    return render_template(
        "customreports/edit.html", draft=draft, outcome=outcome, row=row,
        by_field=outcome.by_field(), form=CustomReportForm(), param_types=PARAM_TYPES,
        rejected_line=_rejected_line(draft.sql, rejected), companies=_company_choices(outcome),
        run_name=report_name(row.id) if row is not None else None,
        preview_columns=describe_columns(outcome.preview.columns, outcome.preview.rows)
        if outcome.preview else [],
    ), status  # fmt: skip


def _rejected_line(sql: str, rejected: QueryRejected | None) -> tuple[int, str, int] | None:
    """(line number, its text, column) of a rejection, to point at it under the SQL box."""
    if rejected is None or rejected.line is None or rejected.column is None:
        return None
    lines = sql.splitlines()
    if not 1 <= rejected.line <= len(lines):
        return None
    return rejected.line, lines[rejected.line - 1], rejected.column


def _stored(report_id: int) -> CustomReport:
    row = get_report_row(web_context().appdb, report_id)
    if row is None:
        raise NotFound(f"No custom report {report_id}.")
    return row


def _stored_sql(report_id: int) -> CustomReport:
    """A report written in SQL: a built one is edited in the report builder (saving it here
    would drop its builder document)."""
    row = _stored(report_id)
    if row.kind != "sql":
        if "reportbuilder.edit" in current_app.view_functions:
            abort(redirect(url_for("reportbuilder.edit", report_id=row.id)))
        raise NotFound(f"Custom report {report_id} was built in the report builder: edit it there.")
    return row


def _checked_post() -> None:
    if not CustomReportForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


@bp.get("/")
@signed_in(*EDITORS, tenancy=Tenancy.SITE)
def index():  # type: ignore[no-untyped-def]
    ctx = web_context()
    rows = list_reports(ctx.appdb)
    people, _ = display_names(ctx.moodle, {r.modifiedby for r in rows}, set())
    builder = "reportbuilder.edit" in current_app.view_functions
    return render_template("customreports/index.html", rows=rows, people=people,
                           form=CustomReportForm(), report_name=report_name,
                           builder=builder)  # fmt: skip


@bp.get("/new")
@signed_in(*EDITORS, tenancy=Tenancy.SITE)
def new():  # type: ignore[no-untyped-def]
    return _editor(Draft(), Outcome(), row=None)


@bp.get("/<id:report_id>")
@signed_in(*EDITORS, tenancy=Tenancy.SITE)
def edit(report_id: int):  # type: ignore[no-untyped-def]
    row = _stored_sql(report_id)
    draft = _draft_of(row)
    outcome = Outcome()
    _check(draft, outcome)  # the parameter table, and whether the whitelist still allows it
    return _editor(draft, outcome, row=row)


@bp.post("/new")
@signed_in(*EDITORS, tenancy=Tenancy.SITE)
def create():  # type: ignore[no-untyped-def]
    return _submitted(None)


@bp.post("/<id:report_id>")
@signed_in(*EDITORS, tenancy=Tenancy.SITE)
def update(report_id: int):  # type: ignore[no-untyped-def]
    return _submitted(_stored_sql(report_id))


def _submitted(row: CustomReport | None):  # type: ignore[no-untyped-def]
    """Check, preview or save (the button pressed); anything wrong comes back as the form
    with every input kept, 422."""
    _checked_post()
    draft, errors = _draft()
    outcome = Outcome(errors=list(errors))
    action = request.form.get("action", "save")
    _check(draft, outcome)
    if action == "preview" and not outcome.errors:
        _preview(draft, outcome)
    if action in ("check", "preview") or outcome.errors:
        return _editor(draft, outcome, row=row, status=422 if outcome.errors else 200)
    ctx = web_context()
    try:
        with form_slot("sql"):  # saving runs it once to learn its columns
            saved = save_report(
                ctx.appdb, report_id=None if row is None else row.id, kind="sql",
                title=draft.title, description=draft.description, sql_text=draft.sql,
                builder_json=None, params=outcome.declared, company_safe=draft.company_safe,
                actor=current_viewer(), source=ctx.moodle, ip=request.remote_addr,
            )  # fmt: skip
    except FieldError as exc:
        outcome.errors.extend(exc.errors)
        return _editor(draft, outcome, row=row, status=422)
    flash(f"Saved “{saved.title}”.", "info")
    return redirect(url_for("customreports.edit", report_id=saved.id))


@bp.get("/<id:report_id>/delete")
@signed_in(*EDITORS, tenancy=Tenancy.SITE)
def confirm_delete(report_id: int):  # type: ignore[no-untyped-def]
    return render_template("customreports/delete.html", row=_stored(report_id),
                           form=CustomReportForm())  # fmt: skip


@bp.post("/<id:report_id>/delete")
@signed_in(*EDITORS, tenancy=Tenancy.SITE)
def delete(report_id: int):  # type: ignore[no-untyped-def]
    _checked_post()
    deleted = delete_report(web_context().appdb, report_id, current_viewer(),
                            ip=request.remote_addr)  # fmt: skip
    flash(f"Deleted “{deleted.title}”. Schedules and dashboards naming "
          f"{report_name(report_id)} no longer find it.", "info")  # fmt: skip
    return redirect(url_for("customreports.index"))


add_nav_item("Custom reports", "customreports.index", *EDITORS, section="customreports")
