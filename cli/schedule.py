"""`manireports schedule next`: when a report schedule with this timing would run, worked out
in its own time zone, printed as UTC instants. `manireports schedule list [--json]`: every
stored schedule (id, title, report, frequency in words, next run in UTC, active).
`manireports schedule run ID`: run one schedule now, in this process, and queue its email.

Exit status: 0 printed; 2 a bad option (one line on standard error naming it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import NoReturn

from common.appdb import AppDB
from common.db import require_database
from common.errors import FieldError
from common.schedules import (
    FREQUENCIES,
    MAX_COUNT,
    next_runs,
    parse_after,
    parse_count,
    parse_recurrence,
)

# FieldError fields to the options they came in by.
_OPTIONS = {"weekdays": "weekday"}


class _OneLineParser(argparse.ArgumentParser):
    """A missing option value is said in one line, like every other bad option here."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"manireports: {message}\n")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    schedule = subparsers.add_parser("schedule", help="report schedules: when they run")
    commands = schedule.add_subparsers(dest="schedule_command", required=True, metavar="COMMAND",
                                       parser_class=_OneLineParser)  # fmt: skip
    upcoming = commands.add_parser(
        "next",
        help="print the next run instants of a schedule's timing",
        description="Print the next N runs strictly after --after, one per line, in UTC ISO 8601 "
        "(2027-03-29T08:00:00Z). Times are the schedule's wall clock in --tz: a time a "
        "spring-forward day skips runs at the first minute after the gap; one a fall-back day "
        "repeats runs once, at its first occurrence. A day past a month's end runs on its last "
        "day. Exit 2 with one line naming a bad option.",
    )
    # Values are checked by common.schedules (not argparse), so that every bad one is named
    # in the same one line the forms and the API would give.
    upcoming.add_argument("--frequency", metavar="|".join(FREQUENCIES),
                          help="how often it runs (required)")  # fmt: skip
    upcoming.add_argument("--at", metavar="HH:MM",
                          help="local time of day (daily, weekly, monthly)")  # fmt: skip
    upcoming.add_argument("--weekday", action="append", metavar="mon,wed",
                          help="weekly: days mon..sun, comma-separated or repeated")  # fmt: skip
    upcoming.add_argument("--day", metavar="N",
                          help="monthly: day 1-31; past a month's end, its last day")  # fmt: skip
    upcoming.add_argument("--cron", metavar="EXPR",
                          help='cron: 5 fields, e.g. "0 9 * * mon-fri", in --tz')  # fmt: skip
    upcoming.add_argument("--tz", metavar="ZONE",
                          help="IANA time zone, e.g. Europe/London (required)")  # fmt: skip
    upcoming.add_argument("--after", metavar="ISO8601",
                          help="runs strictly after this instant (default now)")  # fmt: skip
    upcoming.add_argument("--count", metavar="N",
                          help=f"how many runs, 1 to {MAX_COUNT} (default 5)")  # fmt: skip
    upcoming.set_defaults(func=run_next)
    listing = commands.add_parser(
        "list",
        help="list the stored report schedules",
        description="Every stored report schedule, by title: id, title, report, frequency in "
        "words, next run in UTC ISO 8601 (none when inactive) and active. With --json, one JSON "
        'array of {"id", "title", "report", "frequency", "next_run", "active"}.',
    )
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(func=run_list)
    run = commands.add_parser(
        "run",
        help="run one report schedule now",
        description="Render the schedule's report for each recipient's scope and queue the "
        "email job, here and now (whether the schedule is active or not); the mailers send it. "
        'Prints one JSON object: {"schedule", "job", "recipients", "files", "left_out", '
        '"dispatched"}. Exit 1 when the run fails (the reason on standard error), 2 for an '
        "unknown schedule.",
    )
    run.add_argument("id", help="the schedule's id (see `schedule list`)")
    run.set_defaults(func=run_now)


def run_next(args: argparse.Namespace) -> int:
    errors: list[FieldError] = []
    try:
        recurrence = parse_recurrence(
            frequency=args.frequency, tz=args.tz, at=args.at,
            weekdays=args.weekday, day=args.day, cron=args.cron,
        )  # fmt: skip
    except FieldError as exc:
        errors.extend(exc.errors)
    try:
        after = parse_after(args.after)
    except FieldError as exc:
        errors.append(exc)
    try:
        count = parse_count(args.count)
    except FieldError as exc:
        errors.append(exc)
    if not errors:
        try:
            runs = next_runs(recurrence, after, count)
        except FieldError as exc:
            errors.append(exc)
    if errors:
        message = "; ".join(f"--{_OPTIONS.get(e.field, e.field)}: {e.reason}" for e in errors)
        print(f"manireports: {message}", file=sys.stderr)
        return 2
    sys.stdout.write("".join(f"{run:%Y-%m-%dT%H:%M:%SZ}\n" for run in runs))
    return 0


def run_list(args: argparse.Namespace) -> int:
    # Imported here: `schedule next` needs no database and no models.
    from sqlalchemy import select

    from common.models.schedules import ReportSchedule
    from common.schedules.store import frequency_text
    from common.settings import load_settings

    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url, must_exist=True)
    appdb = AppDB(settings.database_url)
    try:
        with appdb.transaction() as session:
            query = select(ReportSchedule).order_by(ReportSchedule.title, ReportSchedule.id)
            rows = [{"id": row.id, "title": row.title, "report": row.report,
                     "frequency": frequency_text(row),
                     "next_run": f"{row.next_run_at:%Y-%m-%dT%H:%M:%SZ}"
                     if row.next_run_at is not None else None,
                     "active": bool(row.active)} for row in session.scalars(query)]  # fmt: skip
    finally:
        appdb.dispose()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("no schedules")
        return 0
    header = ("ID", "TITLE", "REPORT", "FREQUENCY", "NEXT RUN (UTC)", "ACTIVE")
    table = [header] + [(str(r["id"]), str(r["title"]), str(r["report"]), str(r["frequency"]),
                         str(r["next_run"] or "-"), "yes" if r["active"] else "no")
                        for r in rows]  # fmt: skip
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0


def run_now(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from common.ids import parse_id
    from common.models.schedules import ReportSchedule
    from common.moodle import MoodleSource
    from common.reports.runs import outcome_of
    from common.schedules.commands import manual_tag, run_command
    from common.schedules.runner import RunRequest, execute
    from common.settings import load_settings

    try:
        schedule_id = parse_id(args.id, "id")
    except FieldError:
        print(f"manireports: ID: {args.id[:40]!r} is not a schedule id", file=sys.stderr)
        return 2
    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url, must_exist=True)
    appdb = AppDB(settings.database_url)
    source = MoodleSource(settings.moodle_database_url, settings.moodle_prefix)
    try:
        with appdb.transaction() as session:
            if session.get(ReportSchedule, schedule_id) is None:
                print(f"manireports: no schedule {schedule_id}", file=sys.stderr)
                return 2
        command = run_command(schedule_id, datetime.now(UTC), manual=manual_tag())
        request = RunRequest(schedule_id, datetime.now(UTC), command.msg_id, manual=True)
        try:
            outcome = execute(appdb, source, settings, request)
        except Exception as exc:  # noqa: BLE001 - told as one line, like a scheduled failure
            status, error = outcome_of(exc)
            print(f"manireports: schedule {schedule_id}: {status}: {error}", file=sys.stderr)
            return 1
    finally:
        source.dispose()
        appdb.dispose()
    dispatched = False
    if outcome.job_id is not None:
        dispatched = asyncio.run(_dispatch(settings, outcome.job_id))
    print(json.dumps({"schedule": schedule_id, "job": outcome.job_id,
                      "recipients": outcome.recipients, "files": outcome.files,
                      "left_out": list(outcome.left_out), "dispatched": dispatched}))  # fmt: skip
    return 0


async def _dispatch(settings, job_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Tell the mailers now; without a bus the mailers' watcher finds the job within minutes."""
    from cli.status import _embedded_url
    from common.bus import Bus
    from common.mail.queue import dispatch_async

    try:
        url = settings.nats_url or _embedded_url(settings)
        bus = await asyncio.wait_for(Bus.connect(url, name="manireports-cli"), 5)
    except Exception:  # noqa: BLE001 - no bus: the watcher dispatches it
        return False
    try:
        return await dispatch_async(bus.publish, job_id)
    finally:
        await bus.close()
