"""The email template editor: each job type's Mustache subject, HTML and text for a company.

Site admins also edit the site-wide templates (`?company=0`), which apply to companies that
have none of their own. Saving and previewing check the templates with the same code as job
creation and the JSON API (`template_checks.template_problem`: syntax errors with their line
and column, sizes, render limits): 422 naming the field and the error. The page previews as
one types (`POST …/preview`, JSON, debounced by template-editor.js); a preview renders with
sample variables and is shown escaped or in a sandboxed frame, never as markup of this page.
Create, update and delete are audited.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError

from common.access import capabilities as caps
from common.errors import FieldError
from common.mail.template_checks import (
    JOB_VARIABLES,
    SAMPLE_VARIABLES,
    Preview,
    TemplateFields,
    render_preview,
    syntax_issues,
)
from common.mail.templates import (
    SITE_WIDE,
    delete_template,
    effective_template,
    effective_templates,
    save_template,
)
from common.models.mail import JOB_TYPES
from web.auth.guards import Tenancy, chosen_company_id, current_viewer, signed_in, web_context

bp = Blueprint("email_templates", __name__, url_prefix="/admin/email-offload/templates",
               template_folder="templates")  # fmt: skip
MAX_SAMPLE_CHARS = 20_000


class TemplateForm(FlaskForm):
    pass


def _company_id() -> int:
    """The company whose templates are edited: the one asked for or chosen in the header,
    else the one the header shows for this page (a site admin on "All companies": the first
    company; a manager of several: the one they manage first), as on every one-company page.

    The site-wide templates are `?company=0`, which goes through `scope_for(…, MANAGE)` like
    any company id, so only a site admin reaches them; anyone else asking gets 403 and an
    audit entry. A site without IOMAD has only the site's templates.
    """
    if not current_viewer().has_iomad:
        return SITE_WIDE
    return chosen_company_id()


def _job_type() -> str:
    job_type = request.args.get("type", "")
    if job_type not in JOB_TYPES:
        abort(400, description=f"type: must be one of {', '.join(JOB_TYPES)}")
    return job_type


def _form_fields() -> TemplateFields:
    text = request.form.get("text", "")
    return TemplateFields(
        subject=request.form.get("subject", ""),
        html=request.form.get("html", ""),
        text=text if text.strip() else None,
    )


def _sample_variables(raw: str) -> dict[str, Any]:
    if len(raw) > MAX_SAMPLE_CHARS:
        raise FieldError("sample", f"at most {MAX_SAMPLE_CHARS} characters")
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON ({exc.msg}, line {exc.lineno})"
        raise FieldError("sample", reason) from None
    if not isinstance(value, dict):
        raise FieldError("sample", "must be a JSON object of variables")
    return value


def _editor(
    company_id: int,
    job_type: str,
    fields: TemplateFields,
    *,
    origin: str,
    sample: str,
    errors: list[FieldError] | None = None,
    preview: Preview | None = None,
    status: int = 200,
) -> tuple[str, int]:
    return render_template(
        "email_offload/template_edit.html", company_id=company_id, job_type=job_type,
        fields=fields, origin=origin, sample=sample, errors=errors or [], preview=preview,
        site_wide=company_id == SITE_WIDE, form=TemplateForm(),
        variables=JOB_VARIABLES.get(job_type, ()),
    ), status  # fmt: skip


@bp.get("/")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def index():  # type: ignore[no-untyped-def]
    company_id = _company_id()
    viewer = current_viewer()
    with web_context().appdb.transaction() as session:
        templates = effective_templates(session, company_id)
    return render_template("email_offload/templates.html", company_id=company_id,
                           templates=templates, site_wide=company_id == SITE_WIDE,
                           is_site_admin=viewer.is_site_admin, form=TemplateForm(),
                           variables=JOB_VARIABLES)  # fmt: skip


@bp.get("/edit")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def edit():  # type: ignore[no-untyped-def]
    company_id = _company_id()
    job_type = _job_type()
    with web_context().appdb.transaction() as session:
        current = effective_template(session, company_id, job_type)
    sample = json.dumps(SAMPLE_VARIABLES, indent=2)
    # The page opens with its preview drawn: it does not wait on the live preview's first call.
    try:
        preview = render_preview(current.fields, SAMPLE_VARIABLES)
    except FieldError:
        preview = None  # a stored template that no longer renders: the live check says why
    return _editor(company_id, job_type, current.fields, origin=current.origin, sample=sample,
                   preview=preview)  # fmt: skip


@bp.post("/edit")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def save():  # type: ignore[no-untyped-def]
    company_id = _company_id()
    job_type = _job_type()
    viewer = current_viewer()
    if not TemplateForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    fields = _form_fields()
    sample = request.form.get("sample", "")
    origin = request.form.get("origin", "company")
    try:
        if request.form.get("action") == "preview":
            # A preview writes nothing: it shows what a recipient would get.
            preview = render_preview(fields, _sample_variables(sample))
            return _editor(company_id, job_type, fields, origin=origin, sample=sample,
                           preview=preview)  # fmt: skip
        with web_context().appdb.transaction() as session:
            created = save_template(session, company_id, job_type, fields,
                                    actor_id=viewer.user_id, ip=request.remote_addr)  # fmt: skip
    except FieldError as exc:
        return _editor(company_id, job_type, fields, origin=origin, sample=sample,
                       errors=exc.errors, status=422)  # fmt: skip
    except IntegrityError:
        # Two first saves of the same template raced; the other one won.
        abort(409, description="the template was created meanwhile; reload and save again")
    flash(f"Template for {job_type} {'created' if created else 'saved'}. New jobs use it.", "info")
    return redirect(url_for("email_templates.index", company=company_id))


@bp.post("/preview")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def live_preview():  # type: ignore[no-untyped-def]
    """The live preview (JSON): the rendered parts, or every problem with its position.

    `issues` lists each part's syntax problems with line and column, so the editor can point
    at them; `errors` is what saving would answer. Nothing is written.
    """
    _company_id()
    _job_type()
    if not TemplateForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    fields = _form_fields()
    issues = {name: [i.as_dict() for i in syntax_issues(getattr(fields, name) or "")]
              for name in ("subject", "html", "text")}  # fmt: skip
    try:
        preview = render_preview(fields, _sample_variables(request.form.get("sample", "")))
    except FieldError as exc:
        errors = [e.as_dict() for e in exc.errors]
        return jsonify(ok=False, errors=errors, issues=issues), 422
    return jsonify(ok=True, subject=preview.subject, html=preview.html, text=preview.text,
                   issues=issues)  # fmt: skip


@bp.post("/delete")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def delete():  # type: ignore[no-untyped-def]
    company_id = _company_id()
    job_type = _job_type()
    viewer = current_viewer()
    if not TemplateForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    with web_context().appdb.transaction() as session:
        deleted = delete_template(session, company_id, job_type, actor_id=viewer.user_id,
                                  ip=request.remote_addr)  # fmt: skip
    fallback = "the built-in one" if company_id == SITE_WIDE else "the site-wide or built-in one"
    flash(f"Template for {job_type} deleted; {fallback} applies." if deleted
          else f"No template of this company for {job_type} to delete.", "info")  # fmt: skip
    return redirect(url_for("email_templates.index", company=company_id))
