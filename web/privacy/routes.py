"""Privacy: a site admin's page to export or delete everything ManiReports holds about one
user (common/privacy.py), and the public privacy statement — what is collected, why, and for
how long, the durations read from the retention settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.errors import FieldError
from common.ids import parse_id
from common.moodle.people_search import MAX_QUERY_CHARS, Person, find_people, person_in_scope
from common.privacy import RULES, delete_user, export_user, held_counts
from common.retention import RULES as RETENTION_RULES
from common.settings import Settings
from web.auth.guards import Tenancy, current_viewer, open_to, request_scope, signed_in, web_context
from web.navigation import add_nav_item

bp = Blueprint("privacy", __name__, template_folder="templates")
_ALL_DIGITS = re.compile(r"[0-9]+")
# Site admins only: the menu reads the view's SITE declaration.
add_nav_item("Privacy requests", "privacy.index", group="Administration")


class PrivacyForm(FlaskForm):
    """The CSRF token of the export and delete buttons."""


@dataclass(frozen=True)
class Chosen:
    user_id: int
    person: Person | None  # None: no such Moodle user, or deleted there


def _chosen(user_id: int) -> Chosen:
    return Chosen(user_id, person_in_scope(web_context().moodle, request_scope(), user_id))


def _treatment() -> dict[str, str]:
    """What deletion does to each table's rows, for the page."""
    said: dict[str, str] = {}
    for rule in RULES:
        if rule.subject and rule.delete_only:
            said[rule.table] = "private ones deleted, shared ones kept without the owner"
        elif rule.subject and rule.anonymise is not None:
            said[rule.table] = "kept, without the user"
        elif rule.subject:
            said[rule.table] = "deleted"
        else:
            said[rule.table] = "kept for others, without the user"
    return said


@bp.get("/admin/privacy/")
@signed_in(tenancy=Tenancy.SITE)
def index():  # type: ignore[no-untyped-def]
    text = " ".join(request.args.get("user", "").split())
    matches: list[Person] = []
    chosen = None
    counts: dict[str, int] = {}
    if _ALL_DIGITS.fullmatch(text):
        chosen = _chosen(parse_id(text, "user"))  # 0 or past 2^63: a 400 naming the field
        counts = held_counts(web_context().appdb, chosen.user_id)
    elif text:
        if len(text) > MAX_QUERY_CHARS:
            raise FieldError("user", f"at most {MAX_QUERY_CHARS} characters", status=400)
        matches = find_people(web_context().moodle, request_scope(), text)
        if len(matches) == 1:
            chosen = Chosen(matches[0].user_id, matches[0])
            counts = held_counts(web_context().appdb, chosen.user_id)
    return render_template("privacy/index.html", text=text, matches=matches, chosen=chosen,
                           counts=counts, rules=RULES, treatment=_treatment(),
                           form=PrivacyForm())  # fmt: skip


@bp.post("/admin/privacy/<id:userid>/export")
@signed_in(tenancy=Tenancy.SITE)
def export(userid: int):  # type: ignore[no-untyped-def]
    if not PrivacyForm().validate_on_submit():
        return Response("The form expired; reload the page and try again.", 400)
    found = export_user(web_context().appdb, userid, actor_id=current_viewer().user_id,
                        ip=request.remote_addr, via="web")  # fmt: skip
    response = Response(found.zip_bytes(), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="user-{userid}-data.zip"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/admin/privacy/<id:userid>/delete", methods=["GET", "POST"])
@signed_in(tenancy=Tenancy.SITE)
def delete(userid: int):  # type: ignore[no-untyped-def]
    """GET asks for confirmation; POST with the box ticked deletes."""
    chosen = _chosen(userid)
    form = PrivacyForm()
    error = None
    if request.method == "POST":
        if not form.validate_on_submit():
            error = "The form expired; try again."
        elif request.form.get("confirm") != str(userid):
            error = "Tick the box to confirm the deletion."
        else:
            done = delete_user(web_context().appdb, userid, actor_id=current_viewer().user_id,
                               ip=request.remote_addr, via="web")  # fmt: skip
            flash(f"Deleted {sum(done.deleted.values())} rows about user {userid} and removed "
                  f"them from {sum(done.anonymised.values())} more.", "success")  # fmt: skip
            return redirect(url_for("privacy.index", user=userid))
    counts = held_counts(web_context().appdb, userid)
    page = render_template("privacy/delete.html", chosen=chosen, counts=counts, rules=RULES,
                           treatment=_treatment(), form=form, error=error)  # fmt: skip
    return page, 400 if error else 200


@dataclass(frozen=True)
class Kept:
    what: str
    why: str
    how_long: str


def _days(days: int) -> str:
    return "until deleted (no limit set)" if days <= 0 else f"{days} days"


def statement_rows(settings: Settings) -> list[Kept]:
    """The statement's table: kinds of data, why they are held, and for how long."""
    retained = {rule.table: _days(int(getattr(settings, rule.setting))) for rule in RETENTION_RULES}
    tracking = (
        "Time on course from heartbeats sent by Moodle pages while they are open"
        if settings.time_tracking_enabled
        else "Time on course estimated from the Moodle log (heartbeat tracking is off)"
    )
    return [
        Kept(tracking + ": sessions per course and activity",
             "time-on-course reports and at-risk signals",
             retained["manireports_usertime_sessions"] + " after a session’s last activity"),
        Kept("Daily time per course, engagement, SCORM summaries and at-risk scores",
             "dashboards and reports; computed again from Moodle",
             "while the learner is in Moodle, or until deleted on request"),
        Kept("The audit log: who signed in, exported, changed or was refused what, and from "
             "which address", "security and accountability",
             retained["manireports_audit_logs"]),
        Kept("Report runs: who ran which report with which filters",
             "run history, troubleshooting and usage", retained["manireports_report_runs"]),
        Kept("Cached dashboard figures", "fast dashboards",
             retained["manireports_cache_summary"] + " after they expire"),
        Kept("Email recipients: address, template data and delivery status",
             "sending and retrying email jobs",
             retained["manireports_cloud_recip"] + " after their job was created (once it "
             "has finished)"),
        Kept("Unsubscribes from a company’s bulk email", "never emailing that address again",
             "until deleted by an administrator"),
        Kept("Sign-in sessions and API tokens (only hashes of their secrets)",
             "signing in and calling the API",
             f"sessions end after {settings.login_max_age_s // 3600} hours; tokens until "
             "revoked or expired"),
    ]  # fmt: skip


@bp.get("/privacy")
@open_to(Tenancy.PUBLIC)
def statement():  # type: ignore[no-untyped-def]
    settings = web_context().settings
    return render_template("privacy/statement.html", rows=statement_rows(settings),
                           tracking=settings.time_tracking_enabled)  # fmt: skip
