"""The "API tokens" page: issue a token (shown once), list and revoke them. All audited.

Anyone who could use the API issues tokens for themselves; site admins issue them for any
user (e.g. a BI service account) and see and revoke everyone's. A token acts as its user, so
it never carries more than that user may do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.access.api_tokens import (
    SCOPE_EMAIL_READ,
    SCOPE_EMAIL_WRITE,
    SCOPES,
    issue,
    list_tokens,
    revoke,
    user_id_for_username,
    usernames,
)
from common.access.viewer import Viewer, load_viewer
from common.dashboards import DASHBOARDS
from common.errors import FieldError
from common.ids import parse_id, parse_optional_id
from common.models.base import utcnow
from common.reports import registered_reports
from common.tenancy import MANAGE, SITE, VIEW, TenantScope, TenantViolation, load_token, scope_for
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.errors import reasons_by_field
from web.navigation import add_nav_item

# Whoever holds a capability some API endpoint checks may hold a token (a learner too: the
# API serves them their own progress and dashboard).
API_CAPABILITIES = tuple(
    sorted(
        {c for r in registered_reports() for c in r.capabilities}
        | {d.capability for d in DASHBOARDS}
        | {caps.MANAGE_EMAIL_OFFLOAD}
    )
)
MAX_EXPIRY_DAYS = 3650
EMAIL_SCOPES = (SCOPE_EMAIL_READ, SCOPE_EMAIL_WRITE)

bp = Blueprint("api", __name__, url_prefix="/admin/api-tokens", template_folder="templates")
add_nav_item("API tokens", "api.tokens", *API_CAPABILITIES, group="Administration")


class TokenForm(FlaskForm):
    pass


@dataclass(frozen=True)
class TokenRequest:
    user_id: int
    name: str
    scopes: list[str]
    company_id: int | None
    expires_at: datetime | None


def _is_admin(viewer: Viewer) -> bool:
    return viewer.can(caps.VIEW_ADMIN_DASHBOARD)


# The form's fields as its labels call them, for the summary above the form.
FIELD_LABELS = {"name": "Name", "username": "For user", "scopes": "Scopes",
                "company": "Restrict to company", "expires_days": "Expires after",
                "expires_at": "Expires after"}  # fmt: skip


def _token_scope(viewer: Viewer) -> TenantScope:
    """Whose tokens the page lists and may revoke: an admin everyone's, anyone else their own."""
    return SITE if _is_admin(viewer) else TenantScope(None, user_ids=frozenset({viewer.user_id}))


def _page(
    viewer: Viewer,
    errors: list[FieldError] | None = None,
    values: dict[str, object] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    ctx = web_context()
    with ctx.appdb.transaction() as session:
        tokens = list_tokens(session, _token_scope(viewer))
    names = usernames(ctx.moodle, {t.userid for t in tokens})
    return render_template(
        "api/tokens.html", tokens=tokens, names=names, scopes=SCOPES, errors=errors or [],
        by_field=reasons_by_field(errors or []), labels=FIELD_LABELS,
        values=values or {}, is_admin=_is_admin(viewer), form=TokenForm(), now=utcnow(),
    ), status  # fmt: skip


@bp.get("/")
@signed_in(*API_CAPABILITIES, tenancy=Tenancy.SELF)
def tokens():  # type: ignore[no-untyped-def]
    return _page(current_viewer())


@bp.post("/")
@signed_in(*API_CAPABILITIES, tenancy=Tenancy.SELF)
def create():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    if not TokenForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    values: dict[str, Any] = {
        key: request.form.get(key, "").strip()[:200]
        for key in ("name", "username", "company", "expires_days")
    }
    values["scopes"] = request.form.getlist("scopes")
    ctx = web_context()
    try:
        wanted = _token_request(viewer, values)
        with ctx.appdb.transaction() as session:
            plaintext, row = issue(
                session, wanted.user_id, wanted.name, wanted.scopes, wanted.company_id,
                wanted.expires_at, created_by=viewer.user_id, ip=request.remote_addr,
            )  # fmt: skip
    except FieldError as exc:
        return _page(viewer, exc.errors, values, 422)
    owner = usernames(ctx.moodle, [row.userid]).get(row.userid)
    page = render_template("api/token_created.html", token=plaintext, row=row, owner=owner)
    # Shown once: not kept by the browser's cache or history.
    return page, 201, {"Cache-Control": "no-store"}


@bp.post("/revoke")
@signed_in(*API_CAPABILITIES, tenancy=Tenancy.SELF)
def revoke_token():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    if not TokenForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    token_id = parse_id(request.form.get("token"), "token")
    with web_context().appdb.transaction() as session:
        row = load_token(session, token_id, _token_scope(viewer))
        done = revoke(session, row, actor_id=viewer.user_id, ip=request.remote_addr)
        label = f"{row.name} ({row.prefix}…)"
    flash(f"Token {label} revoked." if done else f"Token {label} was already revoked.", "info")
    return redirect(url_for("api.tokens"))


def _token_request(viewer: Viewer, values: dict[str, Any]) -> TokenRequest:
    """Who the token is for and what it may do. A company restriction needs the owner to be
    allowed that company for what the token does (email scopes: managing it); the viewer
    asking for a company of their own that they may not use is a 403, as anywhere."""
    owner = _owner(viewer, values["username"])
    company_id = parse_optional_id(values["company"], "company")
    if company_id is not None:
        action = MANAGE if set(values["scopes"]) & set(EMAIL_SCOPES) else VIEW
        try:
            scope_for(owner, company_id, action)
        except TenantViolation:
            if owner.user_id == viewer.user_id:
                raise
            verb = "manage" if action is MANAGE else "see"
            raise FieldError("company", f"{owner.username} may not {verb} it") from None
    expires_at = None
    if values["expires_days"]:
        days = values["expires_days"]
        if not days.isascii() or not days.isdigit() or not 1 <= int(days) <= MAX_EXPIRY_DAYS:
            raise FieldError("expires_days", f"a number of days, 1 to {MAX_EXPIRY_DAYS}")
        expires_at = utcnow() + timedelta(days=int(days))
    return TokenRequest(owner.user_id, values["name"], values["scopes"], company_id, expires_at)


def _owner(viewer: Viewer, username: str) -> Viewer:
    if not username or username.lower() == viewer.username.lower():
        return viewer
    if not _is_admin(viewer):
        raise TenantViolation(None, "only site admins issue API tokens for other users")
    ctx = web_context()
    user_id = user_id_for_username(ctx.moodle, username)
    owner = None
    if user_id is not None:
        with ctx.appdb.transaction() as session:
            owner = load_viewer(ctx.moodle, session, user_id)
    if owner is None:
        raise FieldError("username", "no active account with that username")
    return owner
