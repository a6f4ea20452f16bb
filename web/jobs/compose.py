"""Composing a bulk email job: the "New email job" page, its recipient count and test send.

Lives beside the job monitor (`routes.py`) on the same `jobs` blueprint; the monitor lists and
acts on jobs, this module creates them. Recipients come from one source
(`common.mail.recipient_sources`): a pasted list, a CSV file, or people chosen in Moodle
through the tenant scope. The content is checked by the same code as the JSON API's
(`common.mail.jobs.job_content_problems`, then `create_job` itself), and every problem of the
form is answered at once: 422, the page again, each reason beside its field, every input kept
— an uploaded file included, carried in the page as its text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from common.access import capabilities as caps
from common.errors import FieldError, raise_all
from common.ids import parse_id
from common.mail.addresses import address_problem
from common.mail.jobs import job_content_problems
from common.mail.queue import queue_job
from common.mail.recipient_sources import (
    COMPANY,
    CSV_FILE,
    MAX_CSV_BYTES,
    MOODLE_SOURCES,
    PASTE,
    SOURCES,
    RecipientList,
    moodle_choices,
    moodle_recipients,
    parse_recipient_csv,
    pasted,
)
from common.mail.recipients import RecipientSpec
from common.mail.template_checks import JOB_VARIABLES, SAMPLE_VARIABLES
from common.tenancy import TenantScope, scoped
from web.auth.guards import (
    Tenancy,
    chosen_company_id,
    current_viewer,
    request_scope,
    signed_in,
    web_context,
)
from web.errors import reasons_by_field, wants_json
from web.jobs.routes import ActionForm, bp
from web.navigation import add_nav_item

add_nav_item("New email job", "jobs.new", caps.MANAGE_EMAIL_OFFLOAD, group="Email")

TEST_PREFIX = "[Test] "
_FIELD_ORDER = {name: i for i, name in enumerate(
    ("subject", "html", "text", "source", "recipients", "csv", "course", "cohort",
     "department", "company", "test_to"))}  # fmt: skip


@dataclass
class Composed:
    """What the form holds, as typed: shown again whatever went wrong."""

    subject: str = ""
    html: str = ""
    text: str = ""
    source: str = PASTE
    recipients: str = ""
    csv_text: str = ""  # an uploaded file's text, kept across a refused submit
    csv_name: str = ""
    choice: dict[str, str] = field(default_factory=dict)  # source -> chosen id
    test_to: str = ""


def _composed() -> Composed:
    form = request.form
    composed = Composed(
        subject=form.get("subject", ""), html=form.get("html", ""), text=form.get("text", ""),
        source=form.get("source", PASTE), recipients=form.get("recipients", ""),
        csv_text=form.get("csv_text", ""), csv_name=form.get("csv_name", ""),
        choice={kind: form.get(kind, "") for kind in MOODLE_SOURCES if kind != COMPANY},
        test_to=form.get("test_to", "").strip(),
    )  # fmt: skip
    upload = request.files.get("csv")
    if upload is not None and upload.filename:
        data = upload.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            raise FieldError("csv", f"the file is larger than {MAX_CSV_BYTES // 1024 // 1024} MB")
        # Kept as text so that a refused form still has it (a file input cannot be refilled).
        composed.csv_text = data.decode("utf-8-sig", errors="replace")
        composed.csv_name = upload.filename[:200]
    return composed


def _recipients(composed: Composed, scope: TenantScope) -> RecipientList:
    """The chosen source's recipients; FieldError(s) naming the source's field."""
    if composed.source == PASTE:
        return pasted(composed.recipients)
    if composed.source == CSV_FILE:
        if not composed.csv_text:
            raise FieldError("csv", "choose a CSV file")
        return parse_recipient_csv(composed.csv_text.encode())
    if composed.source in MOODLE_SOURCES:
        object_id = None
        if composed.source != COMPANY:
            raw = composed.choice.get(composed.source, "")
            if not raw:
                raise FieldError(composed.source, f"choose a {composed.source}")
            object_id = parse_id(raw, composed.source)
        ctx = web_context()
        return moodle_recipients(ctx.moodle, scope, composed.source, object_id, now=ctx.clock())
    raise FieldError("source", f"must be one of {', '.join(SOURCES)}")


def _checked(composed: Composed, scope: TenantScope) -> RecipientList:
    """The recipients, once everything in the form is right; else every problem at once."""
    errors: list[FieldError] = []
    found: RecipientList | None = None
    try:
        found = _recipients(composed, scope)
    except FieldError as exc:
        errors += exc.errors
    # The templates are tried with the first recipient's data, as create_job does.
    first = found.recipients[0] if found and found.recipients else None
    variables = {**first.data, "email": first.email} if first else SAMPLE_VARIABLES
    errors += job_content_problems(composed.subject, composed.html, composed.text or None,
                                   variables)  # fmt: skip
    raise_all(errors)
    assert found is not None
    return found


def _viewer_email() -> str:
    viewer = current_viewer()
    source = web_context().moodle
    own = TenantScope(company_ids=None, user_ids=frozenset({viewer.user_id}))
    query = scoped(
        select(source.tables.user.c.email).where(source.tables.user.c.id == viewer.user_id),
        own,
        source,
    )
    with source.engine.connect() as conn:
        return str(conn.scalar(query) or "")


def _page(composed: Composed, *, errors: list[FieldError] | None = None, status: int = 200,
          notice: str | None = None):  # type: ignore[no-untyped-def]  # fmt: skip
    scope = request_scope()
    choices = moodle_choices(web_context().moodle, scope) if scope.company_id else {}
    # Listed in the order of the page: the message first, then its recipients.
    errors = sorted(errors or [], key=lambda e: _FIELD_ORDER.get(e.field, len(_FIELD_ORDER)))
    by_field = reasons_by_field(errors)
    if not composed.test_to:
        composed.test_to = _viewer_email()
    return render_template(
        "jobs/new.html", form=ActionForm(), company_id=scope.company_id, c=composed,
        sources=SOURCES, choices=choices, errors=errors, by_field=by_field,
        variables=JOB_VARIABLES["bulk"], max_csv_mb=MAX_CSV_BYTES // 1024 // 1024, notice=notice,
    ), status  # fmt: skip


def _require_form() -> None:
    if not ActionForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


@bp.get("/new")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def new():  # type: ignore[no-untyped-def]
    return _page(Composed())


@bp.post("/create")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def create():  # type: ignore[no-untyped-def]
    _require_form()
    company_id = chosen_company_id()
    scope = request_scope()
    composed = Composed()
    try:
        composed = _composed()
        found = _checked(composed, scope)
        ctx = web_context()
        queued = queue_job(
            ctx.appdb, ctx.bus_client.publish, company_id=company_id, job_type="bulk",
            recipients=found.recipients, source="ui", subject=composed.subject,
            html=composed.html, text=composed.text or None, actor_id=current_viewer().user_id,
        )  # fmt: skip
    except FieldError as exc:
        return _page(composed, errors=exc.errors, status=exc.status)
    if not queued.dispatched:
        flash("Saved, but the mailers cannot be reached now; they will pick it up.", "error")
    flash(f"Job {queued.job_id} created for {len(found.recipients)} recipients.", "info")
    return redirect(url_for("jobs.view", job=queued.job_id))


@bp.post("/recipients/count")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def count_recipients():  # type: ignore[no-untyped-def]
    """How many people the chosen source reaches (JSON), before anything is sent."""
    _require_form()
    chosen_company_id()
    found = _recipients(_composed(), request_scope())  # FieldError: 422 with every line
    return jsonify(found.as_json())


@bp.post("/send-test")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def send_test():  # type: ignore[no-untyped-def]
    """One message of the composed job to one address, through the mailers like any job.

    It is rendered with the first recipient's data when the list can be read (else with
    sample data), so what arrives is what that recipient would get.
    """
    _require_form()
    company_id = chosen_company_id()
    scope = request_scope()
    composed = Composed()
    try:
        composed = _composed()
        to = composed.test_to or _viewer_email()
        errors = [FieldError("test_to", address_problem(to) or "")] if address_problem(to) else []
        try:
            found = _recipients(composed, scope)
            variables: dict[str, Any] = dict(found.recipients[0].data) if found.recipients else {}
        except FieldError:
            variables = dict(SAMPLE_VARIABLES)
        variables.pop("email", None)
        errors += job_content_problems(composed.subject, composed.html, composed.text or None,
                                       {**variables, "email": to})  # fmt: skip
        raise_all(errors)
        ctx = web_context()
        queued = queue_job(
            ctx.appdb, ctx.bus_client.publish, company_id=company_id, job_type="bulk",
            recipients=[RecipientSpec(email=to, data=variables)], source="ui",
            subject=TEST_PREFIX + composed.subject, html=composed.html,
            text=composed.text or None, actor_id=current_viewer().user_id,
            payload={"test": True},
        )  # fmt: skip
    except FieldError as exc:
        if wants_json():
            raise
        return _page(composed, errors=exc.errors, status=exc.status)
    said = f"Test message to {to} queued as job {queued.job_id}."
    if not queued.dispatched:
        said += " The mailers cannot be reached now; it is sent when they can."
    if wants_json():
        url = url_for("jobs.view", job=queued.job_id)
        return jsonify(job=queued.job_id, to=to, dispatched=queued.dispatched, message=said,
                       url=url)  # fmt: skip
    return _page(composed, notice=said)
