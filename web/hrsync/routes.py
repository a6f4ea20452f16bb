"""The HR sync admin page, for site administrators: its settings (secrets write-only), which of
them the environment sets, the cursor with "Reset cursor", "Run now" and "Dry run", and the run
history with each run's summary and a dry run's diff.

"Run now" and "Dry run" publish the sync service's `mr.cmd.sync.bamboohr` command through the
web tier's bus client, each with a message id of its own; when the bus cannot take it nothing
is queued and the page says so. Saving, resetting the cursor and running are audited.

Which fields the environment sets is read from this web process's environment: deploy the sync
service with the same HR sync variables (they are what `manireports sync bamboohr` reads too).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select

from common.audit import OUTCOME_FAILED, OUTCOME_SUCCESS, record_audit
from common.errors import FieldError
from common.hrsync.config_save import (
    ALLOW_PRIVATE_ENV,
    MAP_PREFIX,
    MAP_PROFILE,
    SECRET_FIELDS,
    allow_private_hosts,
    default_mapping,
    form_values,
    save_hr_config,
    secret_masks,
)
from common.hrsync.notify import COUNTS, NOTIFY_ENV
from common.hrsync.schedule import SYNC_SUBJECT, recurrence_of
from common.hrsync.schedule import TASK as HR_SYNC_TASK
from common.hrsync.settings import ENV_FIELDS, IDENTITY_FIELDS
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig, HrSyncCursor, HrSyncRun
from common.schedules.task_runs import one_line
from common.schedules.timing import next_runs
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.errors import reasons_by_field
from web.humanize import zone_named
from web.navigation import add_nav_item

bp = Blueprint("hrsync", __name__, url_prefix="/admin/hr-sync", template_folder="templates")
# Site admins only: the menu reads the views' SITE declaration.
add_nav_item("HR sync", "hrsync.index", section="hrsync", group="Administration")

HISTORY_SIZE = 50
DIFF_ROWS_SHOWN = 2000
NEXT_RUNS_SHOWN = 3
FORM_FIELDS = (
    "bamboohr_base_url", "bamboohr_api_key", "moodle_ws_url", "moodle_ws_token", "batch_size",
    "lookback_days", "cron", "tz", *(MAP_PREFIX + key for key in IDENTITY_FIELDS), MAP_PROFILE,
    "auth", "max_suspend_share", "notify_emails",
)  # fmt: skip
LABELS = {
    "bamboohr_base_url": "BambooHR base URL", "bamboohr_api_key": "BambooHR API key",
    "moodle_ws_url": "Moodle URL", "moodle_ws_token": "Moodle web-service token",
    "batch_size": "Batch size", "lookback_days": "Initial look-back", "cron": "Cron expression",
    "tz": "Time zone", "auth": "Auth plugin for new users",
    "max_suspend_share": "Most a run may suspend", "notify_emails": "Notification addresses",
    MAP_PROFILE: "Custom profile fields",
    **{MAP_PREFIX + key: f"Moodle {key}" for key in IDENTITY_FIELDS},
}  # fmt: skip
# Form field → the environment variable that wins over it.
ENV_VAR = {**{name: var for var, name in ENV_FIELDS.items()}, "notify_emails": NOTIFY_ENV}


class HrSyncForm(FlaskForm):
    """The CSRF token of every form on these pages."""


@dataclass(frozen=True)
class RunLine:
    run: HrSyncRun
    summary: dict[str, Any]
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> list[tuple[str, int]]:
        return [(name, _int(self.summary.get(name))) for name in COUNTS]


def _env() -> os._Environ[str]:
    return os.environ


@lru_cache(maxsize=1)
def _zone_names() -> list[str]:
    return sorted(available_timezones() - {"localtime"})


def _checked_post() -> None:
    if not HrSyncForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


def _audit(action: str, outcome: str, details: dict[str, Any], object_type: str = "hr_sync",
           object_id: int | None = SETTINGS_ROW) -> None:  # fmt: skip
    with web_context().appdb.transaction() as session:
        record_audit(session, actor_id=current_viewer().user_id, action=action,
                     object_type=object_type, object_id=object_id, outcome=outcome,
                     ip=request.remote_addr, details=details)  # fmt: skip


def _stored() -> tuple[HrSyncConfig | None, HrSyncCursor | None, list[RunLine]]:
    with web_context().appdb.transaction() as session:
        row = session.get(HrSyncConfig, SETTINGS_ROW)
        cursor = session.get(HrSyncCursor, SETTINGS_ROW)
        runs = list(session.scalars(select(HrSyncRun).order_by(HrSyncRun.started_at.desc(),
                                    HrSyncRun.id.desc()).limit(HISTORY_SIZE)))  # fmt: skip
        session.expunge_all()
    return row, cursor, [_line(run) for run in runs]


def _line(run: HrSyncRun) -> RunLine:
    summary = _json(run.summary_json, {})
    if not isinstance(summary, dict):
        summary = {}
    errors = summary.get("errors")
    listed = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    return RunLine(run, summary, listed)


def _next_runs(values: dict[str, str]) -> list[datetime]:
    recurrence = recurrence_of(values.get("cron", ""), values.get("tz", "UTC"))
    if recurrence is None:
        return []
    now = datetime.fromtimestamp(web_context().clock(), UTC)
    try:
        return next_runs(recurrence, now, NEXT_RUNS_SHOWN)
    except FieldError:
        return []


def _page(
    values: dict[str, str],
    errors: list[FieldError],
    *,
    status: int = 200,
    secrets_dropped: list[str] | None = None,
) -> tuple[str, int]:
    row, cursor, runs = _stored()
    env = _env()
    env_set = {name: var for name, var in ENV_VAR.items() if (env.get(var) or "").strip()}
    env_values = {name: env[var].strip() for name, var in env_set.items()
                  if name not in SECRET_FIELDS}  # fmt: skip
    stored_schedule = form_values(row)
    page = render_template(
        "hrsync/index.html", values=values, errors=errors, by_field=reasons_by_field(errors),
        labels=LABELS, masks=secret_masks(row, web_context().settings.secret_key),
        env_set=env_set, env_values=env_values, secrets_dropped=secrets_dropped or [],
        cursor=cursor, runs=runs, size=HISTORY_SIZE, identity_fields=IDENTITY_FIELDS,
        defaults=default_mapping(), zones=_zone_names(), form=HrSyncForm(),
        next_runs=_next_runs(stored_schedule), scheduled=stored_schedule,
        zone=zone_named(current_viewer().timezone), saved=row is not None,
        allow_private=allow_private_hosts(env), allow_private_env=ALLOW_PRIVATE_ENV,
        lookback_days=stored_schedule["lookback_days"], map_prefix=MAP_PREFIX,
    )  # fmt: skip
    return page, status


@bp.get("/")
@signed_in(tenancy=Tenancy.SITE)
def index():  # type: ignore[no-untyped-def]
    row, _, _ = _stored()
    return _page(form_values(row), [])


@bp.post("/")
@signed_in(tenancy=Tenancy.SITE)
def save():  # type: ignore[no-untyped-def]
    """Save; a refused save comes back as the form with every input kept (secrets excepted:
    they are never written into a page), 422."""
    _checked_post()
    values = {name: request.form.get(name, "") for name in FORM_FIELDS}
    ctx = web_context()
    try:
        with ctx.appdb.transaction() as session:
            saved = save_hr_config(session, values, secret_key=ctx.settings.secret_key,
                                   actor_id=current_viewer().user_id, ip=request.remote_addr,
                                   env=_env())  # fmt: skip
            changed = len(saved.changed)
    except FieldError as exc:
        typed = [name for name in SECRET_FIELDS if values[name].strip()]
        shown = {**values, **dict.fromkeys(SECRET_FIELDS, "")}
        return _page(shown, exc.errors, status=422, secrets_dropped=typed)
    flash("Saved the HR sync settings." if changed else "Saved: nothing had changed.", "info")
    return redirect(url_for("hrsync.index"))


@bp.post("/run")
@signed_in(tenancy=Tenancy.SITE)
def run_now():  # type: ignore[no-untyped-def]
    _checked_post()
    dry_run = request.form.get("dry_run") == "1"
    msg_id = f"hrsync:manual:{uuid.uuid4().hex[:12]}"
    payload = {"dry_run": dry_run, "trigger": "manual", "startedby": current_viewer().user_id}
    if not dry_run:  # a real run is a run of the hr_sync task (a dry run changes nothing)
        payload["task"] = HR_SYNC_TASK
    what = "dry run" if dry_run else "run"
    try:
        web_context().bus_client.publish(SYNC_SUBJECT, payload, msg_id=msg_id)
    except Exception as exc:  # noqa: BLE001 - any bus failure is told to the admin
        problem = one_line(str(exc), 300) or type(exc).__name__
        _audit("hr_sync_run_now", OUTCOME_FAILED, {"dry_run": dry_run, "msg_id": msg_id,
                                                   "error": problem})  # fmt: skip
        flash(f"Not queued: the message bus cannot be reached ({problem}). Nothing was run; "
              "try again in a moment.", "error")  # fmt: skip
    else:
        _audit("hr_sync_run_now", OUTCOME_SUCCESS, {"dry_run": dry_run, "msg_id": msg_id})
        flash(f"Queued: the HR sync {what} starts shortly; it appears under Runs when it "
              "does (reload the page).", "info")  # fmt: skip
    return redirect(url_for("hrsync.index") + "#runs")


@bp.get("/reset-cursor")
@signed_in(tenancy=Tenancy.SITE)
def confirm_reset():  # type: ignore[no-untyped-def]
    row, cursor, _ = _stored()
    env_lookback = (_env().get("HR_SYNC_LOOKBACK_DAYS") or "").strip()
    return render_template("hrsync/reset.html", cursor=cursor, form=HrSyncForm(),
                           lookback_days=form_values(row)["lookback_days"],
                           env_lookback=env_lookback)  # fmt: skip


@bp.post("/reset-cursor")
@signed_in(tenancy=Tenancy.SITE)
def reset_cursor():  # type: ignore[no-untyped-def]
    _checked_post()
    with web_context().appdb.transaction() as session:
        cursor = session.get(HrSyncCursor, SETTINGS_ROW)
        before = None if cursor is None else {"since": cursor.since, "offset": cursor.offset}
        if cursor is not None:
            session.delete(cursor)
        record_audit(session, actor_id=current_viewer().user_id, action="hr_sync_cursor_reset",
                     object_type="hr_sync", object_id=SETTINGS_ROW, ip=request.remote_addr,
                     details={"before": before})  # fmt: skip
    if before is None:
        flash("There was no cursor: the next run already starts from the look-back.", "info")
    else:
        flash(f"Cursor reset (it was since {before['since']}, offset {before['offset']}): the "
              "next run starts from the look-back.", "info")  # fmt: skip
    return redirect(url_for("hrsync.index"))


@bp.get("/runs/<id:run_id>")
@signed_in(tenancy=Tenancy.SITE)
def run_detail(run_id: int):  # type: ignore[no-untyped-def]
    with web_context().appdb.transaction() as session:
        run = session.get(HrSyncRun, run_id)
        if run is None:
            abort(404, description=f"no HR sync run {run_id}")
        session.expunge(run)
    line = _line(run)
    diff = _json(run.diff_json, None)
    entries = [e for e in diff if isinstance(e, dict)] if isinstance(diff, list) else None
    return render_template(
        "hrsync/run.html", line=line, run=run, diff=(entries or [])[:DIFF_ROWS_SHOWN],
        has_diff=entries is not None, diff_total=len(entries or []),
        zone=zone_named(current_viewer().timezone),
    )  # fmt: skip


def _json(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return default


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
