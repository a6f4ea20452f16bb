"""`manireports sync bamboohr [--dry-run]`: one HR sync run (BambooHR → Moodle users), the same
code the scheduler's job runs. Prints one JSON object (`created`, `updated`, `suspended`,
`unsuspended`, `unchanged`, `skipped`, `errors`, `cursor_before`, `cursor_after`, `dry_run`,
`duration_s`; a dry run adds `diff`, a run that stopped `error`).

Exit status: 0 no errors; 1 any error (or the run stopped, e.g. over the suspension limit);
2 a configuration error, named in one line on standard error.
"""

from __future__ import annotations

import argparse
import json
import sys

from common.appdb import AppDB
from common.db import require_database


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sync = subparsers.add_parser("sync", help="sync users from other systems into Moodle")
    sources = sync.add_subparsers(dest="sync_source", required=True, metavar="SOURCE")
    bamboohr = sources.add_parser(
        "bamboohr",
        help="sync Moodle users from BambooHR",
        description="Read BambooHR's changes since the stored cursor and bring the Moodle users "
        "in step: create, update, suspend (terminated or deleted) and unsuspend (rehired). "
        "Settings come from the HR sync page, overridden by BAMBOOHR_BASE_URL, BAMBOOHR_API_KEY, "
        "MOODLE_WS_URL, MOODLE_WS_TOKEN, HR_SYNC_BATCH_SIZE, HR_SYNC_LOOKBACK_DAYS, "
        "HR_SYNC_MAX_SUSPEND_SHARE and HR_SYNC_AUTH. Prints one JSON summary. Exit 0 with no "
        "errors, 1 otherwise, 2 for a configuration error.",
    )
    bamboohr.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change (with a per-user diff) and change nothing, cursor included",
    )
    bamboohr.set_defaults(func=run_bamboohr)


def run_bamboohr(args: argparse.Namespace) -> int:
    from common.hrsync.engine import record_config_error, run_sync
    from common.hrsync.settings import load_hr_settings
    from common.settings import SettingsError, load_settings

    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url, must_exist=True)
    appdb = AppDB(settings.database_url)
    try:
        try:
            hr = load_hr_settings(appdb, settings)
            hr.require_connection()
        except SettingsError as exc:
            # Recorded in the run history too; `manireports` prints it as one line, exit 2.
            record_config_error(appdb, settings, str(exc), dry_run=args.dry_run, trigger="cli")
            raise
        summary = run_sync(appdb, settings, hr, dry_run=args.dry_run, trigger="cli")
    finally:
        appdb.dispose()
    for skipped in summary.skipped_detail:
        print(
            f"manireports: skipped employee {skipped['employee_id']}: {skipped['reason']}",
            file=sys.stderr,
        )
    if summary.error:
        print(f"manireports: sync bamboohr: {summary.status}: {summary.error}", file=sys.stderr)
    print(json.dumps(summary.as_dict(), ensure_ascii=False))
    return summary.exit_code
