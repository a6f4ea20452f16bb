"""Report schedules: the list, the form (new and edit, with the next five runs previewed
server-side) and delete with a confirmation, for holders of `local/manireports:schedule`.

Everything is checked and stored by `common.schedules.store`: a schedule belongs to the company
the page works on (site-wide for a site admin on "All companies"); another company's is a 404
on every route. The form works without its script: "Show filters" re-renders the chosen
report's filter inputs, "Find" searches Moodle users in the author's scope, "Preview runs"
works out the next five runs; fields of another frequency are ignored (the script hides them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import available_timezones

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.audit import record_audit
from common.customreports.catalog import all_reports, find_report
from common.errors import FieldError
from common.models.schedules import SCHEDULE_FORMATS, ReportSchedule
from common.moodle.people_search import MAX_QUERY_CHARS, Person, find_people
from common.reports import Report
from common.schedules import FREQUENCIES, WEEKDAYS, Recurrence, next_runs, parse_recurrence
from common.schedules.commands import manual_tag, run_command
from common.schedules.files import LinkExpired, file_by_token
from common.schedules.store import (
    Author,
    ScheduleInput,
    delete_schedule,
    filter_field,
    frequency_text,
    get_schedule,
    input_of,
    list_schedules,
    may_run,
    people_named,
    recipients_of,
    save_schedule,
)
from common.schedules.timing import zone_problem
from web.auth.guards import (
    Tenancy,
    current_viewer,
    open_to,
    request_scope,
    signed_in,
    web_context,
)
from web.errors import reasons_by_field
from web.humanize import exact_text, zone_named
from web.navigation import add_nav_item
from web.reports.filter_bar import Control, controls_for

bp = Blueprint("schedules", __name__, url_prefix="/schedules", template_folder="templates")
SCHEDULERS = (caps.SCHEDULE,)
PREVIEW_COUNT = 5
_FIELD_LABELS = {"title": "Title", "report": "Report", "frequency": "Frequency",
                 "at": "Time of day", "weekdays": "Weekdays", "day": "Day of the month",
                 "cron": "Cron expression", "tz": "Time zone", "users": "Moodle users",
                 "emails": "Email addresses", "format": "Format"}  # fmt: skip


class ScheduleForm(FlaskForm):
    """CSRF only: the fields are read by `_input`."""


@dataclass
class Page:
    """What the form shows besides the input: errors, the preview, found people."""

    errors: list[FieldError] = field(default_factory=list)
    found: list[Person] = field(default_factory=list)
    searched: str | None = None


def _author() -> Author:
    return Author(current_viewer(), request_scope())


def _now() -> datetime:
    return datetime.fromtimestamp(web_context().clock(), UTC)


def _default_zone() -> str:
    """The viewer's Moodle timezone when it is an IANA name, else UTC."""
    zone = current_viewer().timezone
    return zone if zone and zone_problem(zone) is None else zone_named(zone).key


def _input() -> ScheduleInput:
    """The form as typed. Fields of another frequency than the chosen one are ignored: the
    script hides them, and without it they are still on the page."""
    form = request.form
    data = ScheduleInput(
        title=form.get("title", "")[:1000], report=form.get("report", "")[:200],
        frequency=form.get("frequency", "")[:20], at=form.get("at", "")[:20],
        weekdays=form.getlist("weekdays")[:7], day=form.get("day", "")[:20],
        cron=form.get("cron", "")[:300], tz=form.get("tz", "")[:100],
        users=form.getlist("users")[:500], emails=form.get("emails", "")[:20_000],
        format=form.get("format", "")[:10], active=form.get("active") == "1",
    )  # fmt: skip
    prefix = filter_field("")
    data.filters = {key[len(prefix):]: value[:500] for key, value in form.items()
                    if key.startswith(prefix)}  # fmt: skip
    if data.frequency in FREQUENCIES:
        if data.frequency == "cron":
            data.at = ""
        else:
            data.cron = ""
        if data.frequency != "weekly":
            data.weekdays = []
        if data.frequency != "monthly":
            data.day = ""
    return data


def _report_choices() -> list[Report]:
    ctx, viewer = web_context(), current_viewer()
    return [r for r in all_reports(ctx.appdb) if may_run(r, viewer, ctx.moodle)]


def _chosen_report(name: str) -> Report | None:
    ctx = web_context()
    report = find_report(name, ctx.appdb) if name and len(name) <= 100 else None
    if report is None or not may_run(report, current_viewer(), ctx.moodle):
        return None
    return report


def _filter_controls(report: Report | None, data: ScheduleInput) -> list[Control]:
    if report is None:
        return []
    return controls_for(report.params, data.filters, request_scope(), web_context().moodle)


def _runs(data: ScheduleInput) -> tuple[list[tuple[str, str]], Recurrence | None]:
    """The next five runs as (in the schedule's zone, in the viewer's), or none when the
    timing does not parse (its errors are the form's)."""
    try:
        recurrence = parse_recurrence(frequency=data.frequency, tz=data.tz, at=data.at,
                                      weekdays=data.weekdays, day=data.day,
                                      cron=data.cron)  # fmt: skip
        runs = next_runs(recurrence, _now(), PREVIEW_COUNT)
    except FieldError:
        return [], None
    zone, mine = zone_named(recurrence.tz), zone_named(current_viewer().timezone)
    return [(exact_text(run, zone), exact_text(run, mine)) for run in runs], recurrence


def _chosen_people(data: ScheduleInput) -> list[tuple[str, str]]:
    """(value, label) of each chosen Moodle user: their name when the author may see them,
    else the value as typed (the save refuses it, beside the field)."""
    ids = [int(u) for u in data.users if u.isascii() and u.isdigit() and len(u) < 19]
    people = people_named(web_context().moodle, request_scope(), ids[:200])
    names = {str(p.user_id): f"{p.name} ({p.username})" for p in people}
    chosen: list[tuple[str, str]] = []
    for value in dict.fromkeys(u.strip() for u in data.users if u.strip()):
        chosen.append((value, names.get(value, f"User {value[:20]}")))
    return chosen


def _form(
    data: ScheduleInput, page: Page, *, row: ReportSchedule | None, status: int = 200
) -> tuple[str, int]:
    report = _chosen_report(data.report)
    runs, recurrence = _runs(data)
    return render_template(
        "schedules/edit.html", data=data, page=page, row=row, form=ScheduleForm(),
        by_field=reasons_by_field(page.errors), labels=_FIELD_LABELS,
        reports=_report_choices(), report=report, controls=_filter_controls(report, data),
        filter_prefix=filter_field(""), frequencies=FREQUENCIES, weekdays=WEEKDAYS,
        formats=SCHEDULE_FORMATS, runs=runs, count=PREVIEW_COUNT,
        in_words=frequency_text(recurrence) if recurrence else None,
        viewer_zone=zone_named(current_viewer().timezone).key, chosen=_chosen_people(data),
        zones=_zone_names(),
    ), status  # fmt: skip


@lru_cache(maxsize=1)
def _zone_names() -> list[str]:
    """IANA names for the time zone box's suggestions."""
    return sorted(available_timezones() - {"localtime"})


def _checked_post() -> None:
    if not ScheduleForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


@bp.get("/")
@signed_in(*SCHEDULERS, tenancy=Tenancy.VIEW)
def index():  # type: ignore[no-untyped-def]
    ctx, author = web_context(), _author()
    rows = list_schedules(ctx.appdb, ctx.moodle, author)
    titles = {r.type_name: r.title for r in all_reports(ctx.appdb)}
    recipients = {row.id: sum(len(part) for part in recipients_of(row)) for row in rows}
    return render_template(
        "schedules/index.html", rows=rows, titles=titles, recipients=recipients,
        in_words={row.id: frequency_text(row) for row in rows},
        zone=zone_named(author.viewer.timezone), site_wide=author.scope.company_ids is None,
        narrow=not author.scope.whole,
    )  # fmt: skip


@bp.get("/new")
@signed_in(*SCHEDULERS, tenancy=Tenancy.VIEW)
def new():  # type: ignore[no-untyped-def]
    data = ScheduleInput(tz=_default_zone(), report=request.args.get("report", "")[:100])
    return _form(data, Page(), row=None)


@bp.post("/new")
@signed_in(*SCHEDULERS, tenancy=Tenancy.VIEW)
def create():  # type: ignore[no-untyped-def]
    return _submitted(None)


def _stored(schedule_id: int) -> ReportSchedule:
    ctx = web_context()
    return get_schedule(ctx.appdb, ctx.moodle, _author(), schedule_id)


@bp.get("/<id:schedule_id>")
@signed_in(*SCHEDULERS, tenancy=Tenancy.VIEW)
def edit(schedule_id: int):  # type: ignore[no-untyped-def]
    row = _stored(schedule_id)
    return _form(input_of(row), Page(), row=row)


@bp.post("/<id:schedule_id>")
@signed_in(*SCHEDULERS, tenancy=Tenancy.VIEW)
def update(schedule_id: int):  # type: ignore[no-untyped-def]
    return _submitted(_stored(schedule_id))


def _submitted(row: ReportSchedule | None):  # type: ignore[no-untyped-def]
    """Save, or only re-render (show the report's filters, find people, preview runs); a
    refused save comes back as the form with every input kept, 422."""
    _checked_post()
    data = _input()
    action = request.form.get("action", "save")
    page = Page()
    if action == "find":
        text = " ".join(request.form.get("people_search", "").split())
        page.searched = text
        if len(text) > MAX_QUERY_CHARS:
            page.errors.append(FieldError("users", f"search: at most {MAX_QUERY_CHARS} "
                                                   "characters"))  # fmt: skip
        elif text:
            page.found = find_people(web_context().moodle, request_scope(), text)
    if action != "save":
        return _form(data, page, row=row)
    ctx = web_context()
    try:
        saved = save_schedule(ctx.appdb, ctx.moodle, data, _author(),
                              schedule_id=None if row is None else row.id, now=_now(),
                              ip=request.remote_addr)  # fmt: skip
    except FieldError as exc:
        page.errors.extend(exc.errors)
        return _form(data, page, row=row, status=422)
    flash(f"Saved “{saved.title}”.", "info")
    return redirect(url_for("schedules.index"))


@bp.get("/<id:schedule_id>/delete")
@signed_in(*SCHEDULERS, tenancy=Tenancy.VIEW)
def confirm_delete(schedule_id: int):  # type: ignore[no-untyped-def]
    row = _stored(schedule_id)
    return render_template("schedules/delete.html", row=row, form=ScheduleForm(),
                           in_words=frequency_text(row))  # fmt: skip


@bp.post("/<id:schedule_id>/delete")
@signed_in(*SCHEDULERS, tenancy=Tenancy.VIEW)
def delete(schedule_id: int):  # type: ignore[no-untyped-def]
    _checked_post()
    ctx = web_context()
    deleted = delete_schedule(ctx.appdb, ctx.moodle, _author(), schedule_id,
                              ip=request.remote_addr)  # fmt: skip
    flash(f"Deleted the schedule “{deleted.title}”.", "info")
    return redirect(url_for("schedules.index"))


@bp.post("/<id:schedule_id>/run")
@signed_in(*SCHEDULERS, tenancy=Tenancy.VIEW)
def run_now(schedule_id: int):  # type: ignore[no-untyped-def]
    """Queue one run now (paused or not), as the scheduler's workers run any slot."""
    _checked_post()
    row = _stored(schedule_id)
    ctx = web_context()
    command = run_command(row.id, _now(), manual=manual_tag())
    try:
        ctx.bus_client.publish(command.subject, command.payload, msg_id=command.msg_id)
    except Exception as exc:  # noqa: BLE001 - any bus failure: nothing was queued, say so
        flash(f"“{row.title}” could not be queued: the message bus is unavailable ({exc}). "
              "Nothing was sent; try again in a moment.", "error")  # fmt: skip
        return redirect(url_for("schedules.edit", schedule_id=row.id))
    with ctx.appdb.transaction() as session:
        record_audit(session, actor_id=current_viewer().user_id, action="schedule_run_now",
                     object_type="report_schedule", object_id=row.id, company_id=row.companyid,
                     ip=request.remote_addr, details={"msg_id": command.msg_id})  # fmt: skip
    flash(f"Queued “{row.title}”: it runs in a moment and is emailed to its recipients.", "info")
    return redirect(url_for("schedules.edit", schedule_id=row.id))


@bp.get("/files/<token>")
@open_to(Tenancy.SIGNED)  # the link's 256-bit token is the key; it names one file
def download(token: str):  # type: ignore[no-untyped-def]
    try:
        found = file_by_token(web_context().appdb, token[:200])
    except LinkExpired:
        return render_template("schedules/link.html", expired=True), 410
    except LookupError:
        return render_template("schedules/link.html", expired=False), 404
    response = Response(found.content, mimetype=found.content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{found.filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


add_nav_item("Schedules", "schedules.index", *SCHEDULERS, section="schedules")
