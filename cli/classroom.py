"""`manireports classroom sync [--course MOODLE_ID ...]` and `manireports classroom courses`: the
Google Classroom roster sync from the command line (set up on the Classroom page, or by the
CLASSROOM_* variables, which win).

`sync` runs one roster sync of the mapped courses (or only the given ones) and prints one JSON
object: `status` ("ok", "errors", "skipped"), `skipped` (why, when nothing was synced),
`courses`, `added`, `invited`, `removed`, `unchanged`, `parked` (people with no Google email
mapped: `[{source, user_id, course_id, error}]`), `errors` and `removals_held` (courses whose
leavers were not removed because someone there is parked). `courses` lists the mapping.

Exit status: 0 done (or skipped: nothing configured or mapped); 1 a Classroom call failed or a
given course is not mapped; 2 a configuration error, one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common.appdb import AppDB
from common.db import require_database
from common.moodle import MoodleSource
from common.settings import Settings, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    classroom = subparsers.add_parser("classroom", help="Google Classroom roster sync")
    commands = classroom.add_subparsers(dest="classroom_command", required=True, metavar="COMMAND")
    sync = commands.add_parser(
        "sync",
        help="sync the Classroom rosters of the mapped courses once; print a JSON summary",
        description="Each mapped Moodle course's active enrolments become its Classroom "
        "course's students and teachers; people with no Google email mapped are parked. Exit 0 "
        "done or skipped (not configured, nothing mapped), 1 a call failed or a given course is "
        "not mapped, 2 a configuration error.",
    )
    sync.add_argument(
        "--course",
        type=int,
        action="append",
        metavar="MOODLE_ID",
        help="only this Moodle course (repeatable); it must be mapped",
    )
    sync.set_defaults(func=run_sync)
    courses = commands.add_parser(
        "courses",
        help="list the Moodle → Classroom course mapping",
        description="One line per mapped Moodle course: its id, name, Classroom course id and "
        "where the pair comes from (the Classroom page, or CLASSROOM_COURSE_MAP).",
    )
    courses.add_argument("--json", action="store_true", help="print one JSON array")
    courses.set_defaults(func=run_courses)


def _open() -> tuple[Settings, AppDB, MoodleSource]:
    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url, must_exist=True)
    moodle = MoodleSource(settings.moodle_database_url, settings.moodle_prefix)
    return settings, AppDB(settings.database_url), moodle


def run_sync(args: argparse.Namespace) -> int:
    from common.classroom.run import run_classroom_sync

    settings, appdb, moodle = _open()
    try:
        summary = run_classroom_sync(appdb, moodle, settings, now=time.time(),
                                     courses=args.course, trigger="cli")  # fmt: skip
    finally:
        appdb.dispose()
        moodle.dispose()
    if summary.skipped:
        print(f"manireports: classroom sync: skipped: {summary.skipped}", file=sys.stderr)
    for error in summary.errors:
        where = f"course {error.get('course_id')}"
        if error.get("classroom_id"):
            where += f" (Classroom {error['classroom_id']})"
        if error.get("email"):
            where += f": {error['email']}"
        print(f"manireports: classroom sync: {where}: {error['error']}", file=sys.stderr)
    print(json.dumps(summary.as_dict(), ensure_ascii=False, default=str))
    return summary.exit_code


def run_courses(args: argparse.Namespace) -> int:
    from common.classroom.config import COURSE_MAP_ENV, load_classroom_settings, stored_courses
    from common.classroom.courses import courses_by_id

    settings, appdb, moodle = _open()
    try:
        config = load_classroom_settings(appdb, settings)
        with appdb.transaction() as session:
            stored = stored_courses(session)
        named = courses_by_id(moodle, set(config.course_map))
    finally:
        appdb.dispose()
        moodle.dispose()
    rows = [
        {
            "moodle_course_id": moodle_id,
            "course": named[moodle_id].fullname if moodle_id in named else None,
            "shortname": named[moodle_id].shortname if moodle_id in named else None,
            "classroom_course_id": classroom_id,
            "from": "page" if stored.get(moodle_id) == classroom_id else COURSE_MAP_ENV,
        }
        for moodle_id, classroom_id in sorted(config.course_map.items())
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("No Moodle course is mapped to a Classroom course.")
    for row in rows:
        name = row["course"] or "(no such Moodle course)"
        print(f"{row['moodle_course_id']}\t{name}\t{row['classroom_course_id']}\t{row['from']}")
    return 0
