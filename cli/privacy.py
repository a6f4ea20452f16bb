"""`manireports privacy export|delete USERID`: everything ManiReports holds about one Moodle
user, as a zip of JSON files (one per table, and manifest.json), or deleted (rows that must
stay for others are anonymised). Both are written to the audit log (actor: none, via: cli).

Exit status: 0 done; 1 deletion not confirmed; 2 a bad argument (one line naming it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.appdb import AppDB
from common.db import require_database
from common.ids import MAX_ID
from common.privacy import delete_user, export_user
from common.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    privacy = subparsers.add_parser("privacy", help="export or delete a user's data")
    commands = privacy.add_subparsers(dest="privacy_command", required=True, metavar="COMMAND")
    export = commands.add_parser(
        "export",
        help="write everything held about a user to a zip of JSON files",
        description="One JSON file per table, and manifest.json naming what each holds.",
    )
    export.add_argument("userid", type=user_id, metavar="USERID", help="the Moodle user id")
    export.add_argument("--output", required=True, metavar="FILE.zip", help="the zip to write")
    export.set_defaults(func=run_export)
    remove = commands.add_parser(
        "delete",
        help="delete everything held about a user",
        description="Rows about the user are deleted; rows that stay for others (audit "
        "entries, email jobs they created, shared dashboards, unsubscribes) lose the user's "
        "id. Asks for confirmation unless --yes is given.",
    )
    remove.add_argument("userid", type=user_id, metavar="USERID", help="the Moodle user id")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(func=run_delete)


def user_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise argparse.ArgumentTypeError(f"USERID: {raw!r} is not a user id (a whole number > 0)")
    return int(raw)


def _appdb() -> AppDB:
    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url, must_exist=True)
    return AppDB(settings.database_url)


def run_export(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix.lower() != ".zip":
        print(f"manireports: --output: {output} must end in .zip", file=sys.stderr)
        return 2
    if not output.parent.is_dir():
        print(f"manireports: --output: no folder {output.parent}", file=sys.stderr)
        return 2
    appdb = _appdb()
    try:
        found = export_user(appdb, args.userid, actor_id=None, via="cli")
    finally:
        appdb.dispose()
    # Written beside the target, then renamed: a failure never leaves half a zip.
    partial = output.with_name(output.name + ".part")
    partial.write_bytes(found.zip_bytes())
    partial.replace(output)
    rows = sum(found.counts.values())
    print(f"user {args.userid}: {rows} rows from {len(found.counts)} tables written to {output}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        try:
            answer = input(f"Delete everything ManiReports holds about user {args.userid}? "
                           "Type the user id to confirm: ")  # fmt: skip
        except EOFError:
            answer = ""
        if answer.strip() != str(args.userid):
            print("manireports: not confirmed; nothing deleted", file=sys.stderr)
            return 1
    appdb = _appdb()
    try:
        done = delete_user(appdb, args.userid, actor_id=None, via="cli")
    finally:
        appdb.dispose()
    print(f"user {args.userid}: deleted {sum(done.deleted.values())} rows, "
          f"anonymised {sum(done.anonymised.values())}")  # fmt: skip
    for table, count in sorted(done.deleted.items()):
        print(f"  deleted     {table}: {count}")
    for table, count in sorted(done.anonymised.items()):
        print(f"  anonymised  {table}: {count}")
    return 0
