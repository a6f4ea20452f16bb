"""`manireports report run NAME`: a report's rows for scripts and cron, same as the dashboard.

The command line is an operator's tool: it runs with site-wide scope, narrowed to one company
with --company.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sqlalchemy.exc import OperationalError

from common.db import require_database
from common.errors import FieldError
from common.ids import parse_id
from common.moodle import MoodleSource
from common.reports import get_report, registered_reports
from common.reports.export import to_csv
from common.settings import SettingsError, load_settings
from common.tenancy import TenantScope


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = subparsers.add_parser("report", help="prebuilt reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    run = report_sub.add_parser("run", help="print a report as CSV or JSON")
    run.add_argument("name", help="report type, e.g. course_completion")
    run.add_argument("--format", choices=("csv", "json"), default="csv")
    run.add_argument("--company", type=company_id, help="only this IOMAD company")
    run.add_argument("--days", help="date range in days (report-specific choices)")
    run.set_defaults(func=run_report)
    listing = report_sub.add_parser("list", help="list the reports")
    listing.set_defaults(func=list_reports)


def company_id(raw: str) -> int:
    """An argparse type: the one id rule (ASCII digits, at most 2^63-1)."""
    try:
        return parse_id(raw, "company")
    except FieldError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def list_reports(_args: argparse.Namespace) -> int:
    for report in registered_reports():
        print(f"{report.type_name:<24} {report.title}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    report = get_report(args.name)
    if report is None:
        names = ", ".join(r.type_name for r in registered_reports())
        print(f"manireports: no report named {args.name!r} (available: {names})", file=sys.stderr)
        return 2
    raw = {k: v for k, v in {"days": args.days}.items() if v is not None}
    try:
        params = report.parse_params(raw)
    except FieldError as exc:
        print(f"manireports: --{exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    settings = load_settings()
    require_database("MOODLE_DATABASE_URL", settings.moodle_database_url, must_exist=True)
    source = MoodleSource(settings.moodle_database_url, settings.moodle_prefix)
    try:
        features = source.features()
        if args.company is not None and not features.has_iomad:
            raise SettingsError("MOODLE_DATABASE_URL: --company needs an IOMAD site")
        scope = TenantScope(company_ids=None if args.company is None else (args.company,))
        result = report.run(source, scope, params, now=int(time.time()))
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0]
        raise SettingsError(
            f"MOODLE_DATABASE_URL: not a readable Moodle database: {reason}"
        ) from None
    finally:
        source.dispose()
    if args.format == "json":
        print(json.dumps(result.as_json(), indent=2, default=str))
    else:
        sys.stdout.write(to_csv(result))
    return 0
