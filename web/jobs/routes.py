"""The email job monitor: jobs with live status, progress, rate and errors; cancel and retry.

New jobs are composed in `compose.py`, the dead letters and failures of every job in scope are
listed in `dead_letters.py` (same blueprint).

The job page and the list poll `/jobs/progress` (JSON) every second until the job is final;
the numbers come from a per-process snapshot cache (`monitor_cache`) that reads the database at
most once per job per second however many people watch. Every action is a POST with a CSRF
token and applies only in the states `common.mail.job_status.job_actions` allows (the buttons
show only there too); state changes are audited in the same transaction, then the mailers are
told through the bus (common.mail.queue).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.ids import parse_id
from common.mail.job_status import (
    cancel_job,
    job_actions,
    open_dead_chunks,
    retry_dead_chunks,
    retry_failed,
)
from common.mail.monitor import STATE_LABELS, JobSnapshot, list_jobs, recent_errors
from common.mail.queue import dispatch, new_retry_tag
from common.models.mail import JOB_FINAL_STATES, CloudJob
from common.tenancy import load_job
from web.auth.guards import (
    Tenancy,
    current_viewer,
    request_scope,
    signed_in,
    web_context,
)
from web.jobs.monitor_cache import AccessMemo, SnapshotCache
from web.jobs.names import company_names, local_time
from web.navigation import add_nav_item

bp = Blueprint("jobs", __name__, url_prefix="/jobs", template_folder="templates")
add_nav_item("Email jobs", "jobs.index", caps.MANAGE_EMAIL_OFFLOAD, group="Email")
MAX_POLLED_JOBS = 100
POLL_INTERVAL_MS = 1000


class ActionForm(FlaskForm):
    pass


def snapshots() -> SnapshotCache:
    """This process's snapshot cache (one per app: tests run several apps)."""
    cache = current_app.extensions.get("job_snapshots")
    if cache is None:
        cache = current_app.extensions["job_snapshots"] = SnapshotCache(web_context().appdb)
    return cache  # type: ignore[no-any-return]


def _access_memo() -> AccessMemo:
    memo = current_app.extensions.get("job_access")
    if memo is None:
        memo = current_app.extensions["job_access"] = AccessMemo()
    return memo  # type: ignore[no-any-return]


def _requested_job(session) -> CloudJob:  # type: ignore[no-untyped-def]
    """The job named by `job=`, if it is a job of a company the viewer manages."""
    scope = request_scope()  # tenancy first: another company's id is a 403, not a 400
    return load_job(session, parse_id(request.values.get("job"), "job"), scope)


def _visible_snapshot(job_id: int) -> JobSnapshot:
    """The job's snapshot for this viewer: the scoped loader decides access the first time
    (403 for another company's job, 404 for none), remembered for later polls."""
    scope = request_scope()
    key = (current_viewer().user_id, scope.company_ids, scope.user_ids, job_id)
    memo = _access_memo()
    if not memo.allowed(key):
        with web_context().appdb.transaction() as session:
            load_job(session, job_id, scope)
        memo.remember(key)
    snapshot = snapshots().get(job_id)
    if snapshot is None:
        abort(404, description=f"no email job {job_id}")
    return snapshot


def _dispatch(job_id: int, retry: str | None = None) -> None:
    if not dispatch(web_context().bus_client.publish, job_id, retry=retry):
        flash("Saved, but the mailers cannot be reached now; they will pick it up.", "error")


@bp.get("/")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def index():  # type: ignore[no-untyped-def]
    """The jobs in scope from one query; the rows of unfinished jobs then poll their numbers."""
    scope = request_scope()
    with web_context().appdb.transaction() as session:
        jobs = list_jobs(session, scope)
    memo = _access_memo()
    for job in jobs:  # listed through the scoped query: these the viewer may poll
        memo.remember((current_viewer().user_id, scope.company_ids, scope.user_ids, job.id))
    names = company_names(job.companyid for job in jobs)
    created = {job.id: local_time(job.timecreated) for job in jobs}
    return render_template("jobs/index.html", jobs=jobs, company_id=scope.company_id,
                           labels=STATE_LABELS, final_states=JOB_FINAL_STATES, names=names,
                           created=created, poll_ms=POLL_INTERVAL_MS)  # fmt: skip


@bp.get("/view")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def view():  # type: ignore[no-untyped-def]
    with web_context().appdb.transaction() as session:
        job = _requested_job(session)
        job_id, route, source = job.id, job.route, job.source
        errors = recent_errors(session, job.id)
        dead = open_dead_chunks(session, job.id)
    scope = request_scope()
    _access_memo().remember((current_viewer().user_id, scope.company_ids, scope.user_ids, job_id))
    snapshots().forget(job_id)  # the page itself shows the current state, not a second-old one
    snapshot = snapshots().get(job_id)
    if snapshot is None:
        abort(404, description=f"no email job {job_id}")
    times = {"created": local_time(snapshot.created), "started": local_time(snapshot.started),
             "completed": local_time(snapshot.completed)}  # fmt: skip
    company = company_names([snapshot.company_id])[snapshot.company_id]
    return render_template("jobs/view.html", s=snapshot, route=route, source=source,
                           errors=errors, dead=dead, form=ActionForm(), times=times,
                           company=company, poll_ms=POLL_INTERVAL_MS)  # fmt: skip


@bp.get("/progress")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def progress():  # type: ignore[no-untyped-def]
    """Live numbers of one or more jobs (`job=1&job=2`), as JSON: `{"jobs": [...]}`."""
    request_scope()  # tenancy first: another company asked for is a 403, not a 400
    raw = request.args.getlist("job")
    if not raw or len(raw) > MAX_POLLED_JOBS:
        abort(400, description=f"job: name 1 to {MAX_POLLED_JOBS} jobs")
    ids = list(dict.fromkeys(parse_id(value, "job") for value in raw))
    body = {"jobs": [_visible_snapshot(job_id).as_json() for job_id in ids]}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _action(apply, done: str, allowed):  # type: ignore[no-untyped-def]
    """Run ``apply`` on the requested job if ``allowed(actions)`` holds for its state now."""
    if not ActionForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    with web_context().appdb.transaction() as session:
        job = _requested_job(session)
        job_id = job.id
        actions = job_actions(job.status, failed=job.emails_failed,
                              dead_open=len(open_dead_chunks(session, job.id)))  # fmt: skip
        changed = apply(session, job, current_viewer().user_id) if allowed(actions) else None
    snapshots().forget(job_id)
    if changed is None:
        flash(f"Job {job_id} is {_state_words(job.status)}: that action does not apply.", "error")
    else:
        flash(done.format(job=job_id, n=len(changed) if isinstance(changed, list) else changed)
              if changed else "Nothing to change.", "info")  # fmt: skip
    return job_id, changed


def _state_words(status: str) -> str:
    return "finished" if status in JOB_FINAL_STATES else status


@bp.post("/cancel")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def cancel():  # type: ignore[no-untyped-def]
    job_id, _ = _action(lambda s, job, actor: cancel_job(s, job, actor_id=actor),
                        "Job {job} cancelled.", lambda a: a.cancel)  # fmt: skip
    return redirect(url_for("jobs.view", job=job_id))


@bp.post("/retry-failed")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def retry_failed_recipients():  # type: ignore[no-untyped-def]
    job_id, ids = _action(lambda s, job, actor: retry_failed(s, job, actor_id=actor),
                          "{n} failed recipients of job {job} will be sent again.",
                          lambda a: a.retry_failed)  # fmt: skip
    if ids:
        _dispatch(job_id, retry=new_retry_tag())
    return redirect(url_for("jobs.view", job=job_id))


@bp.post("/retry-dead")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def retry_dead():  # type: ignore[no-untyped-def]
    job_id, ids = _action(lambda s, job, actor: retry_dead_chunks(s, job, actor_id=actor),
                          "Dead-lettered chunks of job {job} will be sent again.",
                          lambda a: a.retry_dead)  # fmt: skip
    if ids:
        _dispatch(job_id, retry=new_retry_tag())
    return redirect(url_for("jobs.view", job=job_id))


# The "New email job" page and the dead-letter view register their views on this blueprint
# (they need `bp` first).
from web.jobs import compose as _compose  # noqa: E402,F401
from web.jobs import dead_letters as _dead_letters  # noqa: E402,F401
