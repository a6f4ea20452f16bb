"""My sessions (where am I signed in; sign out everywhere) and, for site admins, signing any
user out everywhere. Both end sessions through web.auth.sessions, which audits it."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, url_for

from common.access.signin import find_local_user
from common.access.web_sessions import live_web_sessions
from common.errors import FieldError
from web.account.forms import SignOutEverywhereForm, SignOutUserForm
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.auth.sessions import current_session_hash, end_session, revoke_user_sessions

bp = Blueprint("account", __name__, url_prefix="/account", template_folder="templates")


@bp.get("/sessions")
@signed_in(tenancy=Tenancy.SELF)
def sessions():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    ctx = web_context()
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    with ctx.appdb.transaction() as db:
        live = live_web_sessions(db, viewer.user_id, now, idle_s=ctx.settings.login_idle_timeout_s)
    return render_template(
        "account/sessions.html", sessions=live, this_session=current_session_hash(),
        form=SignOutEverywhereForm(), idle_s=ctx.settings.login_idle_timeout_s,
        max_age_s=ctx.settings.login_max_age_s,
    )  # fmt: skip


@bp.post("/sessions/sign-out-everywhere")
@signed_in(tenancy=Tenancy.SELF)
def sign_out_everywhere():  # type: ignore[no-untyped-def]
    form = SignOutEverywhereForm()
    if not form.validate_on_submit():
        return render_template("error.html", status=400, title="Bad request",
                               message="The form expired; try again."), 400  # fmt: skip
    viewer = current_viewer()
    revoke_user_sessions(viewer.user_id, actor_id=viewer.user_id, reason="signed out everywhere")
    end_session()
    flash("You are signed out on every browser and device.", "success")
    return redirect(url_for("auth.login"))


@bp.route("/sign-out-user", methods=["GET", "POST"])
@signed_in(tenancy=Tenancy.SITE)
def sign_out_user():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    form = SignOutUserForm()
    error: FieldError | None = None
    if form.validate_on_submit():
        username = (form.username.data or "").strip().lower()
        account = find_local_user(web_context().moodle, username)
        if account is None:
            error = FieldError("username", "no account has this username")
        else:
            ended = revoke_user_sessions(
                account.id, actor_id=viewer.user_id, reason=f"signed out by {viewer.username}"
            )
            flash(f"{username} is signed out everywhere ({ended} sessions ended).", "success")
            return redirect(url_for("account.sign_out_user"))
    elif form.errors:
        field, reasons = next(iter(form.errors.items()))
        error = FieldError(str(field), str(reasons[0]))
    status = 422 if error else 200
    return render_template("account/sign_out_user.html", form=form, error=error), status
