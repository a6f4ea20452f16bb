"""`manireports unenroll preview [--json]` and `manireports unenroll run`: the auto-unenroll
policy (set on the Unenroll policy page) from the command line.

`preview` lists the people a run would take (days inactive and why) and the protected ones it
leaves out; it changes nothing and exits 0. `run` runs the stored policy once — off: nothing;
dry-run: a `dry_unenroll` audit event per candidate; live: removals through the remover named
by `UNENROLL_REMOVER`, else the Classroom's when it is configured — and prints one JSON object
(`enabled`, `dry_run`, `candidates`, `removed`, `protected`, `failed`, `stopped`, `errors`).

Exit status: 0 done; 1 the run stopped (over the share limit) or a removal failed; 2 a
configuration error (a live run with no remover configured, a missing database), one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common.appdb import AppDB
from common.db import require_database
from common.moodle import MoodleSource
from common.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    unenroll = subparsers.add_parser("unenroll", help="the auto-unenroll policy")
    commands = unenroll.add_subparsers(dest="unenroll_command", required=True, metavar="COMMAND")
    preview = commands.add_parser(
        "preview",
        help="list who a run would remove, and the protected people it leaves out",
        description="People inactive in a course for more than the grace period (last access "
        "to that course; never accessed: since enrolment), and the protected ones. Changes "
        "nothing.",
    )
    preview.add_argument("--json", action="store_true", help="print one JSON object")
    preview.set_defaults(func=run_preview)
    run = commands.add_parser(
        "run",
        help="run the stored policy once and print a JSON summary",
        description="Off: nothing. Dry-run: one dry_unenroll audit event per candidate. Live: "
        "removes each candidate through the remover named by UNENROLL_REMOVER (none "
        "configured: a configuration error, nobody removed), unless a course would lose more "
        "than the policy's share of its roster: then nobody is removed and the site "
        "administrators are emailed. Exit 0 done, 1 stopped or a removal failed, 2 a "
        "configuration error.",
    )
    run.set_defaults(func=run_run)


def _open() -> tuple[AppDB, MoodleSource]:
    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url, must_exist=True)
    return AppDB(settings.database_url), MoodleSource(
        settings.moodle_database_url, settings.moodle_prefix
    )


def run_preview(args: argparse.Namespace) -> int:
    from common.unenroll.candidates import find_candidates, identity_resolver
    from common.unenroll.policy import load_policy

    appdb, moodle = _open()
    try:
        with appdb.transaction() as session:
            policy = load_policy(session)
        preview = find_candidates(moodle, policy, time.time(), identity_resolver(appdb))
    finally:
        appdb.dispose()
        moodle.dispose()
    if args.json:
        print(
            json.dumps(
                {
                    "enabled": policy.enabled,
                    "dry_run": policy.dry_run,
                    "grace_days": policy.grace_days,
                    "candidates": [p.as_dict() for p in preview.candidates],
                    "protected": [p.as_dict() for p in preview.protected],
                },
                ensure_ascii=False,
            )
        )
        return 0
    state = "off" if not policy.enabled else ("dry-run" if policy.dry_run else "live")
    print(
        f"policy {state}; grace period {policy.grace_days} days; "
        f"{len(preview.candidates)} candidates, {len(preview.protected)} protected"
    )
    for person in preview.candidates:
        print(
            f"  {person.email}\t{person.name}\t{person.course.fullname}\t"
            f"{person.days_inactive} days\t{person.why}"
        )
    if preview.protected:
        print("protected:")
    for kept in preview.protected:
        person = kept.person
        print(
            f"  {person.email}\t{person.name}\t{person.course.fullname}\t"
            f"{person.days_inactive} days\t{kept.reason}"
        )
    return 0


def run_run(args: argparse.Namespace) -> int:
    from common.unenroll.run import configured_remover, run_policy

    appdb, moodle = _open()
    try:
        # Without UNENROLL_REMOVER: the Classroom's, when configured (page or variables).
        remover = configured_remover(appdb=appdb, settings=load_settings())
        summary = run_policy(appdb, moodle, now=time.time(), remover=remover, via="cli")
    finally:
        appdb.dispose()
        moodle.dispose()
    if summary.stopped:
        print(f"manireports: unenroll run: stopped: {summary.stopped}", file=sys.stderr)
    for error in summary.errors:
        print(
            f"manireports: unenroll run: {error['email']} in {error['course']}: {error['error']}",
            file=sys.stderr,
        )
    print(json.dumps(summary.as_dict(), ensure_ascii=False))
    return summary.exit_code
