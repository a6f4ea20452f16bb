"""Dead letters and failures of every email job in the viewer's scope, with bulk retry.

A site admin with no company chosen sees every company's (with the company's name); a company
manager sees their company's. Every read goes through the scoped layer: the list, the filter
choices and the rows a retry names. A retry naming a recipient outside the scope is refused as
a whole (403, audited) and changes nothing; one naming no recipient at all is a 400.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from common.access import capabilities as caps
from common.errors import FieldError
from common.ids import parse_id, parse_optional_id
from common.mail.job_status import retry_recipients
from common.mail.queue import dispatch, new_retry_tag
from common.models.mail import (
    JOB_CANCELLED,
    RECIPIENT_FAILED,
    CloudDeadChunk,
    CloudJob,
    CloudRecipient,
)
from common.tenancy import TenantViolation, load_job, scoped
from web.auth.guards import Tenancy, current_viewer, request_scope, signed_in, web_context
from web.jobs.names import company_names, local_time
from web.jobs.routes import ActionForm, bp
from web.navigation import add_nav_item

add_nav_item("Dead letters", "jobs.dead_letters", caps.MANAGE_EMAIL_OFFLOAD, group="Email")
PAGE_SIZE = 50
MAX_RETRY_IDS = 1000
MAX_ERROR_CHOICES = 50
MAX_ERROR_CHARS = 2000


def _filters() -> tuple[int | None, str | None, int]:
    job_id = parse_optional_id(request.args.get("job") or None, "job")
    error = (request.args.get("error") or "").strip()[:MAX_ERROR_CHARS] or None
    page = parse_id(request.args.get("page") or "1", "page")
    return job_id, error, min(page, 100_000)


def _failed_query(job_id: int | None, error: str | None):  # type: ignore[no-untyped-def]
    query = (
        select(CloudRecipient.id, CloudRecipient.jobid, CloudRecipient.email,
               CloudRecipient.last_error, CloudRecipient.attempts, CloudRecipient.chunk,
               CloudJob.companyid, CloudJob.type, CloudJob.status)
        .join(CloudJob, CloudJob.id == CloudRecipient.jobid)
        .where(CloudRecipient.status == RECIPIENT_FAILED)
    )  # fmt: skip
    if job_id is not None:
        query = query.where(CloudRecipient.jobid == job_id)
    if error is not None:
        query = query.where(CloudRecipient.last_error == error)
    return query


@bp.get("/dead-letters")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def dead_letters():  # type: ignore[no-untyped-def]
    scope = request_scope()
    job_id, error, page = _filters()
    source = web_context().moodle
    with web_context().appdb.transaction() as session:
        base = _failed_query(job_id, error)
        total = session.scalar(
            select(func.count()).select_from(scoped(base, scope, source).subquery())
        )
        rows = session.execute(
            scoped(base, scope, source)
            .order_by(CloudRecipient.jobid.desc(), CloudRecipient.id)
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        ).all()
        errors = list(
            session.scalars(
                scoped(
                    select(CloudRecipient.last_error)
                    .join(CloudJob, CloudJob.id == CloudRecipient.jobid)
                    .where(CloudRecipient.status == RECIPIENT_FAILED,
                           CloudRecipient.last_error.isnot(None))
                    .group_by(CloudRecipient.last_error)
                    .order_by(CloudRecipient.last_error)
                    .limit(MAX_ERROR_CHOICES),
                    scope, source,
                )
            )
        )  # fmt: skip
        dead_query = (
            select(CloudDeadChunk.jobid, CloudDeadChunk.chunk, CloudDeadChunk.deliveries,
                   CloudDeadChunk.reason, CloudDeadChunk.timecreated, CloudJob.companyid)
            .join(CloudJob, CloudJob.id == CloudDeadChunk.jobid)
            .where(CloudDeadChunk.timeretried.is_(None))
            .order_by(CloudDeadChunk.jobid.desc(), CloudDeadChunk.chunk)
            .limit(PAGE_SIZE)
        )  # fmt: skip
        if job_id is not None:
            dead_query = dead_query.where(CloudDeadChunk.jobid == job_id)
        dead = session.execute(scoped(dead_query, scope, source)).all()
    names = company_names({r.companyid for r in rows} | {d.companyid for d in dead})
    pages = max(1, -(-int(total or 0) // PAGE_SIZE))
    return render_template(
        "jobs/dead_letters.html", rows=rows, dead=dead, errors=errors, total=int(total or 0),
        page=page, pages=pages, job_id=job_id, error=error, names=names,
        many_companies=scope.company_ids is None or len(scope.company_ids) > 1,
        when={(d.jobid, d.chunk): local_time(d.timecreated) for d in dead},
        form=ActionForm(), cancelled=JOB_CANCELLED,
    )  # fmt: skip


@bp.post("/dead-letters/retry")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def retry_dead_letters():  # type: ignore[no-untyped-def]
    if not ActionForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    raw = request.form.getlist("recipient")
    if not raw:
        raise FieldError("recipient", "choose at least one failed recipient")
    if len(raw) > MAX_RETRY_IDS:
        raise FieldError("recipient", f"at most {MAX_RETRY_IDS} at once")
    wanted = sorted({parse_id(value, "recipient") for value in raw})
    scope = request_scope()
    ctx = web_context()
    reopened: dict[int, list[int]] = {}
    with ctx.appdb.transaction() as session:
        by_job = _recipients_in_scope(session, wanted, scope)
        for job_id, ids in sorted(by_job.items()):
            job = load_job(session, job_id, scope)
            done = retry_recipients(session, job, ids, actor_id=current_viewer().user_id)
            if done:
                reopened[job_id] = done
    publish = ctx.bus_client.publish
    unreached = [j for j in reopened if not dispatch(publish, j, retry=new_retry_tag())]
    count = sum(len(ids) for ids in reopened.values())
    flash(f"{count} recipient(s) of {len(reopened)} job(s) will be sent again." if count
          else "Nothing to retry: those recipients are no longer failed.", "info")  # fmt: skip
    if unreached:
        flash("Saved, but the mailers cannot be reached now; they will pick it up.", "error")
    back: dict[str, Any] = {k: v for k, v in request.args.items() if k in ("job", "error", "page")}
    return redirect(url_for("jobs.dead_letters", **back))


def _recipients_in_scope(session, wanted: list[int], scope) -> dict[int, list[int]]:  # type: ignore[no-untyped-def]
    """The named recipients by job, every one within ``scope``; TenantViolation if one is
    another tenant's (nothing read of it beyond its company), FieldError if one does not
    exist."""
    query = select(CloudRecipient.id, CloudRecipient.jobid).where(CloudRecipient.id.in_(wanted))
    found = {r.id: r.jobid for r in session.execute(scoped(query, scope, web_context().moodle))}
    missing = [rid for rid in wanted if rid not in found]
    if missing:
        outside = session.execute(
            select(CloudJob.companyid)
            .join(CloudRecipient, CloudRecipient.jobid == CloudJob.id)
            .where(CloudRecipient.id.in_(missing))
            .limit(1)
        ).first()
        if outside is not None:
            raise TenantViolation(int(outside.companyid), "a recipient is outside your scope")
        raise FieldError("recipient", f"no failed recipient {missing[0]}")
    by_job: dict[int, list[int]] = defaultdict(list)
    for rid, job_id in found.items():
        by_job[int(job_id)].append(int(rid))
    return by_job
