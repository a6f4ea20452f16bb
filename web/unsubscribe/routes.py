"""The unsubscribe link of bulk email (RFC 8058): GET asks, POST unsubscribes.

No session and no CSRF token: the link's signature names the recipient and proves the
request came from their message (`common.mail.unsubscribe`). A mail client's one-click POST
(body ``List-Unsubscribe=One-Click``) and the page's own confirm button post to the same URL.
GET never changes anything: link scanners and previews fetch links on their own. A link that
is not genuine (forged, altered, or naming no recipient) is a 404; an expired one a 410.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from common.audit import record_audit
from common.mail.unsubscribe import (
    LinkExpired,
    LinkRejected,
    link_target,
    links_for,
    unsubscribe,
)
from web.app import csrf
from web.auth.guards import Tenancy, open_to, web_context

bp = Blueprint("unsubscribe", __name__, url_prefix="/unsubscribe", template_folder="templates")
MAX_TOKEN_CHARS = 120


def _target(token: str):  # type: ignore[no-untyped-def]
    ctx = web_context()
    if len(token) > MAX_TOKEN_CHARS:
        raise LinkRejected("This unsubscribe link is not valid.")
    recipient_id = links_for(ctx.settings).recipient_of(token, now=ctx.clock())
    with ctx.appdb.transaction() as session:
        return link_target(session, recipient_id)


@bp.get("/<token>")
@open_to(Tenancy.SIGNED)  # the link's HMAC names the recipient; nothing changes on GET
def confirm(token: str):  # type: ignore[no-untyped-def]
    try:
        target = _target(token)
    except LinkRejected as exc:
        return _refused(exc)
    return render_template("unsubscribe/page.html", target=target, masked=_masked(target.email),
                           token=token, done=target.already)  # fmt: skip


@bp.post("/<token>")
@csrf.exempt  # the signature is the proof (a mail client's one-click POST has no token)
@open_to(Tenancy.SIGNED)
def apply(token: str):  # type: ignore[no-untyped-def]
    try:
        target = _target(token)
    except LinkRejected as exc:
        return _refused(exc)
    ctx = web_context()
    with ctx.appdb.transaction() as session:
        stored = unsubscribe(session, target)
        if stored:
            record_audit(
                session, actor_id=target.userid, action="mail_unsubscribed",
                object_type="cloud_recipient", object_id=target.recipient_id,
                company_id=target.company_id, ip=request.remote_addr,
                details={"job": target.job_id,
                         "one_click": request.form.get("List-Unsubscribe") == "One-Click"},
            )  # fmt: skip
    return render_template("unsubscribe/page.html", target=target, masked=_masked(target.email),
                           token=token, done=True)  # fmt: skip


def _refused(exc: LinkRejected):  # type: ignore[no-untyped-def]
    status = 410 if isinstance(exc, LinkExpired) else 404
    return render_template("unsubscribe/page.html", error=str(exc)), status


def _masked(email: str) -> str:
    """Enough of the address to recognise it, not all of it (links get forwarded)."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'•' * min(max(len(local) - 1, 1), 6)}@{domain}"
