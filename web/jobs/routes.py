"""The email job monitor: jobs with status, progress and errors; cancel and retry.

New jobs are composed in `compose.py` (same blueprint).

Every action is a POST with a CSRF token; state changes are audited in the same transaction
(common.mail.job_status), then the mailers are told through the bus (common.mail.queue).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.ids import parse_id
from common.mail.job_status import cancel_job, open_dead_chunks, retry_dead_chunks, retry_failed
from common.mail.monitor import job_progress, list_jobs, recent_errors
from common.mail.queue import dispatch, new_retry_tag
from common.models.mail import CloudJob
from common.tenancy import load_job
from web.auth.guards import (
    Tenancy,
    current_viewer,
    request_scope,
    signed_in,
    web_context,
)
from web.navigation import add_nav_item

bp = Blueprint("jobs", __name__, url_prefix="/jobs", template_folder="templates")
add_nav_item("Email jobs", "jobs.index", caps.MANAGE_EMAIL_OFFLOAD, group="Email")


class ActionForm(FlaskForm):
    pass


def _requested_job(session) -> CloudJob:  # type: ignore[no-untyped-def]
    """The job named by `job=`, if it is a job of a company the viewer manages."""
    scope = request_scope()  # tenancy first: another company's id is a 403, not a 400
    return load_job(session, parse_id(request.values.get("job"), "job"), scope)


def _dispatch(job_id: int, retry: str | None = None) -> None:
    if not dispatch(web_context().bus_client.publish, job_id, retry=retry):
        flash("Saved, but the mailers cannot be reached now; they will pick it up.", "error")


@bp.get("/")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def index():  # type: ignore[no-untyped-def]
    scope = request_scope()
    with web_context().appdb.transaction() as session:
        rows = [job_progress(session, job) for job in list_jobs(session, scope)]
    return render_template("jobs/index.html", rows=rows, form=ActionForm(),
                           company_id=scope.company_id)  # fmt: skip


@bp.get("/view")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def view():  # type: ignore[no-untyped-def]
    with web_context().appdb.transaction() as session:
        job = _requested_job(session)
        progress = job_progress(session, job)
        errors = recent_errors(session, job.id)
        dead = open_dead_chunks(session, job.id)
    return render_template("jobs/view.html", p=progress, errors=errors, dead=dead,
                           form=ActionForm())  # fmt: skip


def _action(apply, done: str):  # type: ignore[no-untyped-def]
    if not ActionForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    with web_context().appdb.transaction() as session:
        job = _requested_job(session)
        job_id = job.id
        changed = apply(session, job, current_viewer().user_id)
    flash(done.format(job=job_id, n=changed) if changed else "Nothing to change.", "info")
    return job_id, changed


@bp.post("/cancel")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def cancel():  # type: ignore[no-untyped-def]
    job_id, _ = _action(lambda s, job, actor: cancel_job(s, job, actor_id=actor),
                        "Job {job} cancelled.")  # fmt: skip
    return redirect(url_for("jobs.view", job=job_id))


@bp.post("/retry-failed")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def retry_failed_recipients():  # type: ignore[no-untyped-def]
    job_id, ids = _action(lambda s, job, actor: retry_failed(s, job, actor_id=actor),
                          "{n} failed recipients of job {job} will be sent again.")  # fmt: skip
    if ids:
        _dispatch(job_id, retry=new_retry_tag())
    return redirect(url_for("jobs.view", job=job_id))


@bp.post("/retry-dead")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def retry_dead():  # type: ignore[no-untyped-def]
    job_id, ids = _action(lambda s, job, actor: retry_dead_chunks(s, job, actor_id=actor),
                          "Dead-lettered chunks of job {job} will be sent again.")  # fmt: skip
    if ids:
        _dispatch(job_id, retry=new_retry_tag())
    return redirect(url_for("jobs.view", job=job_id))


# The "New email job" page registers its views on this blueprint (it needs `bp` first).
from web.jobs import compose as _compose  # noqa: E402,F401
