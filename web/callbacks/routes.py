"""Machine-to-machine endpoints: the cloud worker's signed reports (no session, no CSRF)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from common.audit import OUTCOME_DENIED, record_audit
from common.errors import FieldError
from common.ids import parse_optional_id
from common.mail.callbacks import CallbackRejected, apply_cloud_callback
from common.mail.queue import dispatch
from common.mail.signing import COMPANY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from web.app import csrf
from web.auth.guards import Tenancy, open_to, web_context

bp = Blueprint("callbacks", __name__, url_prefix="/callbacks")


@bp.post("/cloud")
@csrf.exempt
@open_to(Tenancy.SIGNED)  # the company's HMAC key proves the caller; the job must be its own
def cloud():  # type: ignore[no-untyped-def]
    ctx = web_context()
    try:
        with ctx.appdb.transaction() as session:
            applied = apply_cloud_callback(
                session,
                secret_key=ctx.settings.secret_key,
                company_header=request.headers.get(COMPANY_HEADER),
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=request.headers.get(SIGNATURE_HEADER),
                body=request.get_data(cache=False),
                now=ctx.clock(),
            )
    except CallbackRejected as exc:
        _audit_refusal(exc)
        return jsonify(error=str(exc)), exc.status
    # What the cloud worker could not send goes to the local mailers.
    if applied.retry and not dispatch(ctx.bus_client.publish, applied.job_id,
                                      retry=applied.retry_tag):  # fmt: skip
        return jsonify(error="accepted, but the local mailers cannot be reached"), 503
    return jsonify(job=applied.job_id, sent=applied.sent, failed=applied.failed,
                   retry=applied.retry)  # fmt: skip


def _header_company(raw: str) -> int | None:
    """The header's company for the audit entry, when it is an id at all."""
    try:
        return parse_optional_id(raw, "company")
    except FieldError:
        return None


def _audit_refusal(exc: CallbackRejected) -> None:
    company = request.headers.get(COMPANY_HEADER, "")
    with web_context().appdb.transaction() as session:
        record_audit(
            session, actor_id=None, action="cloud_callback_refused", object_type="endpoint",
            object_id=f"{request.method} {request.path}", outcome=OUTCOME_DENIED,
            company_id=_header_company(company), ip=request.remote_addr,
            details={"reason": str(exc), "status": exc.status},
        )  # fmt: skip
