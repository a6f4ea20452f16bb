"""Sign-in with Moodle credentials, sign-out and the company selector."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from common.access.signin import sign_in
from web.auth.forms import CompanyForm, LoginForm, LogoutForm
from web.auth.guards import (
    SESSION_COMPANY,
    SESSION_USER,
    current_viewer,
    deny,
    require_capability,
    web_context,
)

bp = Blueprint("auth", __name__, template_folder="templates")


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would make the sign-in page a phishing aid."""
    if not target:
        return url_for("home.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("home.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    form = LoginForm()
    if form.validate_on_submit():
        ctx = web_context()
        with ctx.appdb.transaction() as db:
            result = sign_in(
                ctx.moodle, db, form.username.data, form.password.data,
                ip=request.remote_addr or "", peppers=ctx.settings.password_peppers,
            )  # fmt: skip
        if result.ok:
            session.clear()  # a fresh session: no fixation across sign-in
            session[SESSION_USER] = result.user_id
            session.permanent = False
            return redirect(_safe_next(request.args.get("next")))
        flash(result.error or "Sign-in failed.", "error")
        return render_template("auth/login.html", form=form), 401
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    form = LogoutForm()
    if not form.validate_on_submit():
        abort(400, description="The sign-out form expired; try again.")
    session.clear()
    return redirect(url_for("auth.login"))


@bp.post("/company")
@require_capability()
def choose_company():  # type: ignore[no-untyped-def]
    form = CompanyForm()
    if not form.validate_on_submit():
        abort(400, description="The form expired; try again.")
    viewer = current_viewer()
    assert viewer is not None
    raw = request.form.get("company", "")
    if not raw.isdigit():
        abort(400, description="company must be a company id")
    company_id = int(raw)
    if not viewer.is_site_admin and company_id not in viewer.company_ids:
        deny(viewer, f"company {company_id} is outside your companies", company_id)
    session[SESSION_COMPANY] = company_id
    return redirect(_safe_next(request.form.get("next")))
