"""`manireports db upgrade`: bring the app DB to the latest migration."""

from __future__ import annotations

import argparse

from common.db import require_database
from common.migrate import upgrade
from common.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = subparsers.add_parser("db", help="app database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="run migrations up to the latest revision")
    up.set_defaults(func=run_upgrade)


def run_upgrade(_args: argparse.Namespace) -> int:
    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url)
    upgrade(settings.database_url)
    print("app database is up to date")
    return 0
