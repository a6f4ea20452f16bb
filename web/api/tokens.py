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
    SCOPES,
    TokenRequestInvalid,
    issue,
    list_tokens,
    revoke,
    user_id_for_username,
    usernames,
)
from common.access.viewer import Viewer, load_viewer
from common.models.api import ApiToken
from common.models.base import utcnow
from common.reports import registered_reports
from common.tenancy import TenantViolation, scope_for
from web.auth.guards import current_viewer, deny, require_capability, web_context
from web.navigation import add_nav_item

# Whoever holds a capability some API endpoint checks may hold a token.
API_CAPABILITIES = tuple(
    sorted({c for r in registered_reports() for c in r.capabilities} | {caps.MANAGE_EMAIL_OFFLOAD})
)
MAX_EXPIRY_DAYS = 3650

bp = Blueprint("api", __name__, url_prefix="/admin/api-tokens", template_folder="templates")
add_nav_item("API tokens", "api.tokens", *API_CAPABILITIES)


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


def _page(
    viewer: Viewer,
    errors: list[str] | None = None,
    values: dict[str, object] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    ctx = web_context()
    with ctx.appdb.transaction() as session:
        tokens = list_tokens(session, None if _is_admin(viewer) else viewer.user_id)
    names = usernames(ctx.moodle, {t.userid for t in tokens})
    return render_template(
        "api/tokens.html", tokens=tokens, names=names, scopes=SCOPES, errors=errors or [],
        values=values or {}, is_admin=_is_admin(viewer), form=TokenForm(), now=utcnow(),
    ), status  # fmt: skip


@bp.get("/")
@require_capability(*API_CAPABILITIES)
def tokens():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    assert viewer is not None
    return _page(viewer)


@bp.post("/")
@require_capability(*API_CAPABILITIES)
def create():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    assert viewer is not None
    if not TokenForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    values: dict[str, Any] = {
        key: request.form.get(key, "").strip()
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
    except TokenRequestInvalid as exc:
        return _page(viewer, [str(exc)], values, 422)
    owner = usernames(ctx.moodle, [row.userid]).get(row.userid)
    page = render_template("api/token_created.html", token=plaintext, row=row, owner=owner)
    # Shown once: not kept by the browser's cache or history.
    return page, 201, {"Cache-Control": "no-store"}


@bp.post("/revoke")
@require_capability(*API_CAPABILITIES)
def revoke_token():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    assert viewer is not None
    if not TokenForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    raw = request.form.get("token", "")
    if not raw.isdigit():
        abort(400, description="token: must be a token id")
    with web_context().appdb.transaction() as session:
        row = session.get(ApiToken, int(raw))
        if row is None:
            abort(404, description=f"no API token {raw}")
        if row.userid != viewer.user_id and not _is_admin(viewer):
            deny(viewer, f"API token {row.id} belongs to another user", company_id=row.companyid)
        done = revoke(session, row, actor_id=viewer.user_id, ip=request.remote_addr)
        label = f"{row.name} ({row.prefix}…)"
    flash(f"Token {label} revoked." if done else f"Token {label} was already revoked.", "info")
    return redirect(url_for("api.tokens"))


def _token_request(viewer: Viewer, values: dict[str, Any]) -> TokenRequest:
    """Who the token is for and what it may do; a refusal by tenancy is a 403, as anywhere."""
    owner = _owner(viewer, values["username"])
    company_id = None
    if values["company"]:
        if not values["company"].isdigit():
            raise TokenRequestInvalid("company", "must be a company id")
        company_id = int(values["company"])
        try:
            scope_for(owner, company_id)
        except TenantViolation as exc:
            if owner.user_id == viewer.user_id:
                deny(viewer, str(exc), company_id=company_id)
            raise TokenRequestInvalid("company", f"{values['username']} is not in it") from None
    expires_at = None
    if values["expires_days"]:
        days = values["expires_days"]
        if not days.isdigit() or not 1 <= int(days) <= MAX_EXPIRY_DAYS:
            raise TokenRequestInvalid("expires_days", f"a number of days, 1 to {MAX_EXPIRY_DAYS}")
        expires_at = utcnow() + timedelta(days=int(days))
    return TokenRequest(owner.user_id, values["name"], values["scopes"], company_id, expires_at)


def _owner(viewer: Viewer, username: str) -> Viewer:
    if not username or username.lower() == viewer.username.lower():
        return viewer
    if not _is_admin(viewer):
        deny(viewer, "only site admins issue API tokens for other users")
    ctx = web_context()
    user_id = user_id_for_username(ctx.moodle, username)
    owner = None
    if user_id is not None:
        with ctx.appdb.transaction() as session:
            owner = load_viewer(ctx.moodle, session, user_id)
    if owner is None:
        raise TokenRequestInvalid("username", "no active account with that username")
    return owner
