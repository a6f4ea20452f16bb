"""Sign-in with Moodle credentials and sign-out. (The header's company switcher posts to
`/company/switch`, web/home/routes.py.)"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from common.access.device_cookies import COOKIE_NAME as DEVICE_COOKIE
from common.access.device_cookies import MAX_AGE_S as DEVICE_COOKIE_MAX_AGE_S
from common.access.signin import Attempt, SignIn
from web.auth.forms import LoginForm, LogoutForm
from web.auth.guards import Tenancy, open_to, web_context
from web.auth.sessions import end_session, start_session

bp = Blueprint("auth", __name__, template_folder="templates")


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would make the sign-in page a phishing aid."""
    if not target:
        return url_for("home.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("home.index")
    return target


def _sign_in() -> SignIn:
    ctx = web_context()
    return SignIn(
        ctx.moodle, ctx.appdb, ctx.settings.secret_key,
        peppers=ctx.settings.password_peppers, auth_plugins=ctx.settings.login_auth_plugins,
    )  # fmt: skip


@bp.route("/login", methods=["GET", "POST"])
@open_to(Tenancy.PUBLIC)
def login():  # type: ignore[no-untyped-def]
    form = LoginForm()
    if form.validate_on_submit():
        ctx = web_context()
        result = _sign_in().attempt(
            Attempt(
                username=form.username.data or "",
                password=form.password.data or "",
                ip=request.remote_addr or "",
                device_cookie=request.cookies.get(DEVICE_COOKIE),
                now=ctx.clock(),
            )
        )
        if result.ok and result.user_id is not None:
            start_session(result.user_id)
            response = redirect(_safe_next(request.args.get("next")))
            # Only the sign-in form needs it: the path keeps it off every other request.
            response.set_cookie(
                DEVICE_COOKIE, result.device_cookie or "", max_age=DEVICE_COOKIE_MAX_AGE_S,
                path=url_for("auth.login"), secure=ctx.settings.production, httponly=True,
                samesite="Lax",
            )  # fmt: skip
            return response
        flash(result.error or "Sign-in failed.", "error")
        return render_template("auth/login.html", form=form), 401
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@open_to(Tenancy.PUBLIC)  # ends this browser's session, whoever (if anyone) it is
def logout():  # type: ignore[no-untyped-def]
    form = LogoutForm()
    if not form.validate_on_submit():
        abort(400, description="The sign-out form expired; try again.")
    end_session()
    return redirect(url_for("auth.login"))
