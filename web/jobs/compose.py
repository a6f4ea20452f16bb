"""Composing a bulk email job: the "New email job" page and its submission.

Lives beside the job monitor (`routes.py`) on the same `jobs` blueprint; the monitor lists and
acts on jobs, this module creates them.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from common.access import capabilities as caps
from common.mail.queue import queue_job
from common.mail.recipients import parse_recipient_lines
from web.auth.guards import (
    Tenancy,
    chosen_company_id,
    current_viewer,
    request_scope,
    signed_in,
    web_context,
)
from web.jobs.routes import ActionForm, bp


@bp.get("/new")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def new():  # type: ignore[no-untyped-def]
    scope = request_scope()
    return render_template("jobs/new.html", form=ActionForm(), company_id=scope.company_id)


@bp.post("/create")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def create():  # type: ignore[no-untyped-def]
    if not ActionForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    company_id = chosen_company_id()
    # Bad input raises FieldError: the app answers 422 listing every field and line.
    recipients = parse_recipient_lines(request.form.get("recipients", ""))
    ctx = web_context()
    queued = queue_job(
        ctx.appdb, ctx.bus_client.publish, company_id=company_id, job_type="bulk",
        recipients=recipients, source="ui", subject=request.form.get("subject", ""),
        html=request.form.get("html", ""), actor_id=current_viewer().user_id,
    )  # fmt: skip
    job_id = queued.job_id
    if not queued.dispatched:
        flash("Saved, but the mailers cannot be reached now; they will pick it up.", "error")
    flash(f"Job {job_id} created for {len(recipients)} recipients.", "info")
    return redirect(url_for("jobs.view", job=job_id))
