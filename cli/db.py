"""`manireports db upgrade`: bring the app DB to the latest migration.

Before it applies anything, the pending revisions are checked (common/migration_guard.py): one
that would break the release still running (a drop, a rename, NOT NULL without a default) is
refused unless it is marked `contract = True` and `--allow-contract` is given.
"""

from __future__ import annotations

import argparse
import sys

from common.db import require_database
from common.migration_guard import IncompatibleMigration, guarded_upgrade
from common.settings import load_settings

REFUSED = 4


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = subparsers.add_parser("db", help="app database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="run migrations up to the latest revision")
    up.add_argument(
        "--allow-contract",
        action="store_true",
        help="also apply revisions marked contract = True (drops, renames); see the README",
    )
    up.set_defaults(func=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url)
    try:
        contract = guarded_upgrade(
            settings.database_url, allow_contract=getattr(args, "allow_contract", False)
        )
    except IncompatibleMigration as exc:
        print(f"manireports: {exc}", file=sys.stderr)
        return REFUSED
    for step in contract:
        print(f"applied contract step: {step.describe()}")
    print("app database is up to date")
    return 0
