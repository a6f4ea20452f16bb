"""The auto-unenroll policy page, for site administrators: the switches (on/off, dry-run), the
grace period, the share limit and the sources; the protected domains and emails, one added or
removed at a time; and a preview of who a run would take now — days inactive and why — and the
protected people it leaves out, each list paged (`page`, `protected_page`) while the share
limit is judged over every candidate. The page never runs the policy (`manireports unenroll run` and
the scheduler do); every change is audited as `unenroll_policy_saved`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.classroom.config import load_classroom_settings
from common.errors import FieldError
from common.settings import SettingsError
from common.unenroll.candidates import Preview, find_candidates, identity_resolver
from common.unenroll.policy import (
    KNOWN_SOURCES,
    MAX_GRACE_DAYS,
    Policy,
    add_protected,
    load_policy,
    remove_protected,
    save_policy,
)
from common.unenroll.run import REMOVER_ENV, over_share
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.errors import reasons_by_field
from web.humanize import zone_named
from web.navigation import add_nav_item

bp = Blueprint(
    "unenroll", __name__, url_prefix="/admin/unenroll-policy", template_folder="templates"
)
# The page's few styles, served by a route of its own so that it declares its tenancy like
# every route (a blueprint static folder would be the one route without).
STYLES = (Path(__file__).with_name("static") / "unenroll.css").read_text(encoding="utf-8")
# Site admins only: the menu reads the views' SITE declaration.
add_nav_item("Unenroll policy", "unenroll.index", section="unenroll", group="Administration")

SETTINGS_FIELDS = ("enabled", "dry_run", "grace_days", "max_remove_share", "sources")
ADD_FIELDS = {"domain": "protected_domains", "email": "protected_emails"}
PREVIEW_PAGE = 100  # people per page of each preview list
LABELS = {
    "enabled": "Auto-unenroll on",
    "dry_run": "Dry run",
    "grace_days": "Grace period",
    "max_remove_share": "Most of a course one run may remove",
    "sources": "Sources",
    "protected_domains": "Protected domain",
    "protected_emails": "Protected email",
}


class UnenrollForm(FlaskForm):
    """The CSRF token of every form on the page."""


def _checked_post() -> None:
    if not UnenrollForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


def _policy() -> Policy:
    with web_context().appdb.transaction() as session:
        return load_policy(session)


def _preview(policy: Policy) -> Preview:
    ctx = web_context()
    return find_candidates(ctx.moodle, policy, ctx.clock(), identity_resolver(ctx.appdb))


def _page(
    values: dict[str, str],
    errors: list[FieldError],
    *,
    status: int = 200,
    adding: dict[str, str] | None = None,
) -> tuple[str, int]:
    policy = _policy()
    preview = _preview(policy)  # every candidate: the share limit is judged over all of them
    candidates = Paged(preview.candidates, "page")
    protected = Paged(preview.protected, "protected_page")
    page = render_template(
        "unenroll/index.html",
        policy=policy,
        values=values,
        errors=errors,
        by_field=reasons_by_field(errors),
        labels=LABELS,
        adding=adding or {},
        candidates=candidates,
        protected=protected,
        would_stop=over_share(preview, policy),
        known_sources=KNOWN_SOURCES,
        max_grace=MAX_GRACE_DAYS,
        remover=_remover_state(),
        remover_env=REMOVER_ENV,
        zone=zone_named(current_viewer().timezone),
        form=UnenrollForm(),
    )
    return page, status


def _remover_state() -> tuple[str, str]:
    """Who a live run removes people through: ("env", ""), ("classroom", ""), ("none", "") or
    ("error", the Classroom settings' problem)."""
    if (os.environ.get(REMOVER_ENV) or "").strip():
        return "env", ""
    ctx = web_context()
    try:
        configured = load_classroom_settings(ctx.appdb, ctx.settings).configured
    except SettingsError as exc:
        return "error", str(exc)
    return ("classroom" if configured else "none"), ""


class Paged:
    """One page of a preview list: its rows, which page of how many, and the list's total."""

    def __init__(self, rows: list[Any], arg: str) -> None:
        self.arg = arg
        self.total = len(rows)
        self.pages = max(1, math.ceil(self.total / PREVIEW_PAGE))
        raw = request.args.get(arg, "1")
        self.page = int(raw) if raw.isdigit() and 1 <= int(raw) <= self.pages else 1
        self.first = (self.page - 1) * PREVIEW_PAGE
        self.rows = rows[self.first : self.first + PREVIEW_PAGE]

    def url(self, page: int, anchor: str) -> str:
        args: dict[str, Any] = {**request.args.to_dict(), self.arg: page}
        return url_for("unenroll.index", _anchor=anchor, **args)


def _audit_args() -> dict[str, Any]:
    return {"actor_id": current_viewer().user_id, "ip": request.remote_addr, "via": "web"}


@bp.get("/")
@signed_in(tenancy=Tenancy.SITE)
def index():  # type: ignore[no-untyped-def]
    return _page(_policy().as_values(), [])


@bp.post("/")
@signed_in(tenancy=Tenancy.SITE)
def save():  # type: ignore[no-untyped-def]
    """Save the switches and numbers; a refused save is the page with the input kept, 422."""
    _checked_post()
    values = {name: request.form.get(name, "") for name in SETTINGS_FIELDS}
    current = _policy().as_values()
    try:
        with web_context().appdb.transaction() as session:
            # The protected lists have forms of their own: a save keeps them as they are.
            changed = save_policy(session, {**current, **values}, **_audit_args())
    except FieldError as exc:
        return _page({**current, **values}, exc.errors, status=422)
    flash("Saved the unenroll policy." if changed else "Saved: nothing had changed.", "info")
    return redirect(url_for("unenroll.index"))


@bp.post("/protected")
@signed_in(tenancy=Tenancy.SITE)
def add():  # type: ignore[no-untyped-def]
    _checked_post()
    kind = request.form.get("kind", "")
    if kind not in ADD_FIELDS:
        abort(400, description="kind: must be domain or email")
    value = request.form.get("value", "")
    try:
        with web_context().appdb.transaction() as session:
            added = add_protected(session, kind, value, **_audit_args())
    except FieldError as exc:
        return _page(_policy().as_values(), exc.errors, status=422, adding={kind: value})
    shown = value.strip().lstrip("@").lower() if kind == "domain" else value.strip().lower()
    flash(
        f"Protected {kind} {shown} added." if added else f"{shown} was protected already.", "info"
    )
    return redirect(url_for("unenroll.index") + f"#protected-{kind}s")


@bp.post("/protected/remove")
@signed_in(tenancy=Tenancy.SITE)
def remove():  # type: ignore[no-untyped-def]
    _checked_post()
    kind = request.form.get("kind", "")
    if kind not in ADD_FIELDS:
        abort(400, description="kind: must be domain or email")
    value = request.form.get("value", "")
    with web_context().appdb.transaction() as session:
        removed = remove_protected(session, kind, value, **_audit_args())
    flash(
        f"{value.strip()} is no longer protected."
        if removed
        else f"{value.strip()} was not protected.",
        "info",
    )
    return redirect(url_for("unenroll.index") + f"#protected-{kind}s")


@bp.get("/unenroll.css")
@signed_in(tenancy=Tenancy.SITE)
def styles():  # type: ignore[no-untyped-def]
    response = Response(STYLES, mimetype="text/css")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
