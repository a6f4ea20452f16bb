"""Report schedules stored: checked, saved, listed and deleted, each change audited in its own
transaction.

Who sees which schedules: the rows of the companies in the author's tenant scope (through the
tenancy map: a company's manager sees that company's, a site admin on "All companies" every
one, site-wide ones included). An author whose scope is narrower than a whole company (a
department manager) sees only the schedules they created: another's could mail that author's
rows to an address of their choosing. A schedule out of sight is `NotFound`, never told apart
from one that does not exist.

A schedule is checked as a whole and every bad field is named at once (`FieldErrors`): the
report (one the author may run), its filters (as the report's `parse_params` takes them, each
named `filter_<param>`), the timing (`parse_recurrence`'s fields), the recipients (Moodle users
in the author's scope; plain addresses, which receive the author's scope), the format and the
title. `next_run_at` is worked out in the schedule's zone on every save of an active schedule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from common.access.viewer import Viewer
from common.audit import record_audit
from common.customreports.catalog import find_report
from common.customreports.stored_report import StoredReport
from common.errors import FieldError, raise_all
from common.mail.addresses import address_problem
from common.models.schedules import SCHEDULE_FORMATS, ReportSchedule
from common.moodle import MoodleSource
from common.moodle.people_search import Person, person_in_scope
from common.reports import Report
from common.schedules.timing import WEEKDAYS, Recurrence, next_run, next_runs, parse_recurrence
from common.tenancy import NotFound, TenantScope, TenantViolation, scoped

if TYPE_CHECKING:
    from common.appdb import AppDB

TITLE_MAX = 200
MAX_USERS = 200
MAX_EMAILS = 200
FILTER_PREFIX = "filter_"
_ADDRESS_SPLIT = re.compile(r"[\s,;]+")


@dataclass
class ScheduleInput:
    """A schedule as a form holds it: raw strings, kept as typed on every error."""

    title: str = ""
    report: str = ""
    filters: dict[str, str] = field(default_factory=dict)  # param name -> raw value
    frequency: str = "daily"
    at: str = "08:00"
    weekdays: list[str] = field(default_factory=list)
    day: str = ""
    cron: str = ""
    tz: str = ""
    users: list[str] = field(default_factory=list)  # Moodle user ids, as typed
    emails: str = ""  # plain addresses, separated by commas, semicolons or new lines
    format: str = "csv"
    active: bool = True


@dataclass(frozen=True)
class Author:
    """Who saves or reads schedules, and the tenant scope they work in."""

    viewer: Viewer
    scope: TenantScope


@dataclass(frozen=True)
class Checked:
    title: str
    report: Report
    filters: dict[str, str]
    recurrence: Recurrence
    users: tuple[int, ...]
    emails: tuple[str, ...]
    format: str
    active: bool


def filter_field(name: str) -> str:
    return f"{FILTER_PREFIX}{name}"


def may_run(report: Report, viewer: Viewer, source: MoodleSource) -> bool:
    return report.enabled(source.features()) and viewer.can_any(report.capabilities)


def _report(
    name: str, appdb: AppDB, source: MoodleSource, author: Author, errors: list[FieldError]
) -> Report | None:
    name = name.strip()
    if not name:
        errors.append(FieldError("report", "required: choose a report"))
        return None
    report = find_report(name, appdb) if len(name) <= 100 else None
    if report is None or not may_run(report, author.viewer, source):
        # Not told apart: a stored report's existence is its author's.
        errors.append(FieldError("report", f"{name[:64]!r} is not a report you may run"))
        return None
    return report


def _filters(
    report: Report, raw: Mapping[str, str], author: Author, errors: list[FieldError]
) -> dict[str, str]:
    """The report's declared filters as given (empty ones left out), each checked on its own
    so that every bad one is named, then together (ranges, required ones, a company)."""
    kept = {p.name: str(raw.get(p.name, "")).strip() for p in report.params}
    kept = {name: value for name, value in kept.items() if value}
    found: list[FieldError] = []
    for param in report.params:
        if param.name in kept:
            try:
                param.parse(kept[param.name])
            except FieldError as exc:
                found.extend(FieldError(filter_field(e.field), e.reason) for e in exc.errors)
    if isinstance(report, StoredReport):  # a page asks for a required value; a run cannot
        found.extend(
            FieldError(filter_field(p.name), "required: a scheduled run has no one to ask")
            for p in report.declared
            if p.required and not p.default and p.type != "company" and p.name not in kept
        )
    if not found:
        try:
            parsed = report.parse_params(kept)
            if isinstance(report, StoredReport):
                report.bind_company(parsed, author.scope)
        except TenantViolation as exc:
            found.append(FieldError("report", str(exc) or "not a report you may schedule here"))
        except FieldError as exc:
            # A company parameter has no input here: the company is the page's.
            names = {p.name for p in report.params}
            found.extend(FieldError(filter_field(e.field) if e.field in names else "report",
                                    e.reason) for e in exc.errors)  # fmt: skip
    errors.extend(found)
    return kept


def _recurrence(data: ScheduleInput, errors: list[FieldError]) -> Recurrence | None:
    try:
        return parse_recurrence(frequency=data.frequency, tz=data.tz, at=data.at,
                                weekdays=data.weekdays, day=data.day, cron=data.cron)  # fmt: skip
    except FieldError as exc:
        errors.extend(exc.errors)
        return None


def _users(
    raw: Iterable[str], source: MoodleSource, scope: TenantScope, errors: list[FieldError]
) -> tuple[int, ...]:
    ids: list[int] = []
    for text in raw:
        text = str(text).strip()
        if not text:
            continue
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            errors.append(FieldError("users", f"{text[:20]!r} is not a user id"))
            continue
        if int(text) not in ids:
            ids.append(int(text))
    if len(ids) > MAX_USERS:
        errors.append(FieldError("users", f"at most {MAX_USERS} Moodle users"))
        return tuple(ids)
    for user_id in ids:
        if person_in_scope(source, scope, user_id) is None:
            # Whether someone outside the scope exists is not told.
            errors.append(FieldError("users", f"user {user_id} is not someone you may send "
                                              "reports to (outside your scope)"))  # fmt: skip
    return tuple(ids)


def _emails(raw: str, errors: list[FieldError]) -> tuple[str, ...]:
    found: list[str] = []
    for address in _ADDRESS_SPLIT.split(raw.strip()):
        if not address:
            continue
        problem = address_problem(address)
        if problem is not None:
            errors.append(FieldError("emails", f"{address[:60]!r}: {problem}"))
        elif address.lower() not in {a.lower() for a in found}:
            found.append(address)
    if len(found) > MAX_EMAILS:
        errors.append(FieldError("emails", f"at most {MAX_EMAILS} addresses"))
    return tuple(found)


def check_schedule(
    appdb: AppDB, source: MoodleSource, data: ScheduleInput, author: Author
) -> Checked:
    """The schedule `data` describes, or FieldErrors naming every bad field."""
    errors: list[FieldError] = []
    title = " ".join(data.title.split())
    if not title:
        errors.append(FieldError("title", "required"))
    elif len(title) > TITLE_MAX:
        errors.append(FieldError("title", f"at most {TITLE_MAX} characters"))
    report = _report(data.report, appdb, source, author, errors)
    filters = _filters(report, data.filters, author, errors) if report is not None else {}
    recurrence = _recurrence(data, errors)
    users = _users(data.users, source, author.scope, errors)
    emails = _emails(data.emails, errors)
    if not users and not emails and not any(e.field in ("users", "emails") for e in errors):
        errors.append(FieldError("users", "add at least one recipient: a Moodle user or an "
                                          "email address"))  # fmt: skip
    if data.format not in SCHEDULE_FORMATS:
        errors.append(FieldError("format", f"one of {', '.join(SCHEDULE_FORMATS)}"))
    raise_all(errors)
    assert report is not None and recurrence is not None
    return Checked(title, report, filters, recurrence, users, emails, data.format,
                   bool(data.active))  # fmt: skip


def recurrence_of(row: ReportSchedule) -> Recurrence:
    return parse_recurrence(frequency=row.frequency, tz=row.tz, at=row.at,
                            weekdays=row.weekdays, day=row.day, cron=row.cron)  # fmt: skip


def recipients_of(row: ReportSchedule) -> tuple[list[int], list[str]]:
    """(Moodle user ids, plain addresses) of a stored schedule."""
    try:
        stored = json.loads(row.recipients_json or "{}")
    except ValueError:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    users = [int(u) for u in stored.get("users", []) if isinstance(u, int)]
    emails = [str(e) for e in stored.get("emails", []) if isinstance(e, str)]
    return users, emails


def filters_of(row: ReportSchedule) -> dict[str, str]:
    try:
        stored = json.loads(row.params_json or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}


def input_of(row: ReportSchedule) -> ScheduleInput:
    """A stored schedule as its form shows it."""
    users, emails = recipients_of(row)
    return ScheduleInput(
        title=row.title, report=row.report, filters=filters_of(row), frequency=row.frequency,
        at=row.at, weekdays=[d for d in row.weekdays.split(",") if d], day=row.day,
        cron=row.cron, tz=row.tz, users=[str(u) for u in users], emails="\n".join(emails),
        format=row.format, active=bool(row.active),
    )  # fmt: skip


def _as_audited(row: ReportSchedule) -> dict[str, Any]:
    users, emails = recipients_of(row)
    return {"title": row.title, "report": row.report, "filters": filters_of(row),
            "frequency": row.frequency, "at": row.at, "weekdays": row.weekdays, "day": row.day,
            "cron": row.cron, "tz": row.tz, "users": users, "emails": emails,
            "format": row.format, "active": bool(row.active)}  # fmt: skip


def _visible(query: Any, author: Author, source: MoodleSource) -> Any:
    """`query` on schedules narrowed to those `author` may see and change."""
    query = scoped(query, TenantScope(company_ids=author.scope.company_ids), source)
    if not author.scope.whole:
        query = query.where(ReportSchedule.createdby == author.viewer.user_id)
    return query


def list_schedules(appdb: AppDB, source: MoodleSource, author: Author) -> list[ReportSchedule]:
    """The schedules `author` may see, by title."""
    query = _visible(select(ReportSchedule), author, source)
    with appdb.transaction() as session:
        found = session.scalars(query.order_by(ReportSchedule.title, ReportSchedule.id)).all()
        session.expunge_all()
    return list(found)


def get_schedule(
    appdb: AppDB, source: MoodleSource, author: Author, schedule_id: int
) -> ReportSchedule:
    query = _visible(select(ReportSchedule).where(ReportSchedule.id == schedule_id), author,
                     source)  # fmt: skip
    with appdb.transaction() as session:
        row = session.scalars(query).first()
        if row is None:
            raise NotFound(f"No schedule {schedule_id}.")
        session.expunge(row)
    return row


def save_schedule(
    appdb: AppDB,
    source: MoodleSource,
    data: ScheduleInput,
    author: Author,
    *,
    schedule_id: int | None = None,
    now: datetime | None = None,
    ip: str | None = None,
) -> ReportSchedule:
    """Create (no `schedule_id`) or change a schedule; FieldErrors naming every bad field,
    NotFound for a schedule out of sight. Audited in the same transaction."""
    checked = check_schedule(appdb, source, data, author)
    moment = now or datetime.now(UTC)
    raw = checked.recurrence.as_raw()
    with appdb.transaction() as session:
        if schedule_id is None:
            row = ReportSchedule(createdby=author.viewer.user_id,
                                 companyid=author.scope.company_id, timecreated=moment,
                                 attempts=0)  # fmt: skip
            session.add(row)
            before: dict[str, Any] | None = None
        else:
            query = _visible(select(ReportSchedule).where(ReportSchedule.id == schedule_id),
                             author, source)  # fmt: skip
            found = session.scalars(query.with_for_update()).first()
            if found is None:
                raise NotFound(f"No schedule {schedule_id}.")
            row, before = found, _as_audited(found)
        was_active = bool(row.active) if before is not None else False
        row.title, row.report, row.format = checked.title, checked.report.type_name, checked.format
        row.params_json = json.dumps(checked.filters, sort_keys=True)
        row.frequency, row.tz, row.at = raw["frequency"], raw["tz"], raw["at"]
        row.weekdays, row.day, row.cron = raw["weekdays"], raw["day"], raw["cron"]
        row.recipients_json = json.dumps({"users": list(checked.users),
                                          "emails": list(checked.emails)})  # fmt: skip
        row.active = checked.active
        row.timemodified = moment
        row.next_run_at = next_run(checked.recurrence, moment) if checked.active else None
        if checked.active and not was_active:  # activated: a fresh start
            row.failed_error, row.attempts = None, 0
        session.flush()
        after = _as_audited(row)
        record_audit(
            session, actor_id=author.viewer.user_id,
            action="schedule_create" if before is None else "schedule_update",
            object_type="report_schedule", object_id=row.id, company_id=row.companyid, ip=ip,
            details=after if before is None
            else {k: {"from": before[k], "to": v} for k, v in after.items() if before[k] != v},
        )  # fmt: skip
        session.flush()
        session.expunge(row)
    return row


def delete_schedule(
    appdb: AppDB, source: MoodleSource, author: Author, schedule_id: int, *, ip: str | None = None
) -> ReportSchedule:
    query = _visible(select(ReportSchedule).where(ReportSchedule.id == schedule_id), author,
                     source)  # fmt: skip
    with appdb.transaction() as session:
        row = session.scalars(query.with_for_update()).first()
        if row is None:
            raise NotFound(f"No schedule {schedule_id}.")
        record_audit(session, actor_id=author.viewer.user_id, action="schedule_delete",
                     object_type="report_schedule", object_id=row.id,
                     company_id=row.companyid, ip=ip, details=_as_audited(row))  # fmt: skip
        session.delete(row)
        session.flush()
        session.expunge(row)
    return row


def upcoming(recurrence: Recurrence, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` runs (UTC) after `after`."""
    return next_runs(recurrence, after, count)


def frequency_text(row_or_recurrence: ReportSchedule | Recurrence) -> str:
    """`Weekly on Mon, Wed at 09:00 Europe/London` — the timing in words."""
    r = (row_or_recurrence if isinstance(row_or_recurrence, Recurrence)
         else _recurrence_or_none(row_or_recurrence))  # fmt: skip
    if r is None:
        return "invalid timing"
    at = r.at.strftime("%H:%M") if r.at is not None else ""
    if r.frequency == "daily":
        words = f"Daily at {at}"
    elif r.frequency == "weekly":
        days = ", ".join(WEEKDAYS[d].capitalize() for d in r.weekdays)
        words = f"Weekly on {days} at {at}"
    elif r.frequency == "monthly":
        late = " (the last day in shorter months)" if r.day and r.day > 28 else ""
        words = f"Monthly on day {r.day}{late} at {at}"
    else:
        words = f"Cron {r.cron}"
    return f"{words} {r.tz}"


def _recurrence_or_none(row: ReportSchedule) -> Recurrence | None:
    try:
        return recurrence_of(row)
    except FieldError:
        return None


def people_named(source: MoodleSource, scope: TenantScope, ids: Sequence[int]) -> list[Person]:
    """The Moodle users among `ids` that `scope` may see, in the order given."""
    found = [person_in_scope(source, scope, user_id) for user_id in ids]
    return [p for p in found if p is not None]
