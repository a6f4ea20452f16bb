"""`manireports report list|run`: any registered report for scripts and cron, with the
same parameters, rows and export formats as the pages and the API.

The command line is an operator's tool: it runs with site-wide scope, narrowed to one company
with --company. A bad report name, parameter or value exits 2 with one line naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import IO, Any

from sqlalchemy.exc import OperationalError

from common.appdb import AppDB
from common.customreports.catalog import all_reports, find_report
from common.customreports.stored_report import StoredReport, report_id_of
from common.customsql.execute import QueryTimeout
from common.db import require_database
from common.errors import FieldError
from common.ids import parse_id
from common.moodle import MoodleSource
from common.reports import Report, RunContext, get_report, registered_reports
from common.reports.base import json_row
from common.reports.render import counted, export_chunks
from common.reports.runs import RunRecord, recorded_run
from common.settings import SettingsError, load_settings
from common.tenancy import TenantScope, TenantViolation

OUTPUT_FORMATS = ("csv", "json", "xlsx", "pdf")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = subparsers.add_parser("report", help="prebuilt reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    run = report_sub.add_parser("run", help="write a report as CSV, JSON, XLSX or PDF")
    run.add_argument("name", help="report name, e.g. course_completion (see: report list)")
    run.add_argument("--format", choices=OUTPUT_FORMATS, default="csv")
    run.add_argument("--output", metavar="FILE", help="write here instead of standard output")
    run.add_argument("--company", type=company_id, help="only this IOMAD company")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a report parameter (repeatable), e.g. --param days=90")  # fmt: skip
    run.add_argument("--days", help="shorthand for --param days=N")
    run.add_argument("--sort", help="a sortable column key; --sort=-key sorts descending")
    run.set_defaults(func=run_report)
    listing = report_sub.add_parser("list", help="list the reports and their parameters")
    listing.add_argument("--json", action="store_true", help="machine-readable")
    listing.set_defaults(func=list_reports)


def company_id(raw: str) -> int:
    """An argparse type: the one id rule (ASCII digits, at most 2^63-1)."""
    try:
        return parse_id(raw, "company")
    except FieldError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def _every_report() -> list[Report]:
    """The registered reports, then the stored custom ones (`custom_<id>`) when the app DB
    has them (a fresh instance without one lists the registered reports only)."""
    try:
        appdb = AppDB(load_settings().database_url)
    except SettingsError:
        return registered_reports()
    try:
        return all_reports(appdb)
    except OperationalError:
        return registered_reports()
    finally:
        appdb.dispose()


def _find_report(name: str) -> Report | None:
    if report_id_of(name) is None:
        return get_report(name)
    appdb = AppDB(load_settings().database_url)
    try:
        return find_report(name, appdb)
    except OperationalError:
        return None
    finally:
        appdb.dispose()


def list_reports(args: argparse.Namespace) -> int:
    from common.reports.describe import report_description

    every = _every_report()
    if args.json:
        print(json.dumps([report_description(r) for r in every], indent=2))
        return 0
    for report in every:
        params = " ".join(
            f"{p.name}={'|'.join(map(str, p.choices)) if p.choices else p.kind}"
            for p in report.params
        )
        print(f"{report.type_name:<20} {report.title:<24} {params}")
    return 0


def _fail(message: str) -> int:
    print(f"manireports: {message}", file=sys.stderr)
    return 2


def _raw_params(args: argparse.Namespace, report: Report) -> dict[str, str]:
    raw: dict[str, str] = {}
    known = {p.name for p in report.params}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FieldError("param", f"{item[:60]!r} is not KEY=VALUE")
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            raise FieldError("param", f"{report.type_name} has no parameter {key[:40]!r} ({names})")
        raw[key] = value
    if args.days is not None:
        raw["days"] = args.days
    if args.sort:
        raw["sort"], raw["dir"] = (
            args.sort.lstrip("-"),
            "desc" if args.sort.startswith("-") else "asc",
        )
    return raw


def _flag(field: str, args: argparse.Namespace) -> str:
    """The option a bad value came in by, so the one-line error names what to fix."""
    if field == "days" and args.days is not None:
        return "--days"
    if field in ("sort", "dir"):
        return "--sort"
    return "--param" if field == "param" else f"--param {field}"


def run_report(args: argparse.Namespace) -> int:
    report = _find_report(args.name)
    if report is None:
        names = ", ".join(r.type_name for r in _every_report())
        return _fail(f"no report named {args.name!r} (available: {names})")
    try:
        raw = _raw_params(args, report)
        params = report.parse_params(raw)
        page = report.page_request(raw)
    except FieldError as exc:
        return _fail(f"{_flag(exc.field, args)}: {exc.reason}")
    settings = load_settings()
    require_database("MOODLE_DATABASE_URL", settings.moodle_database_url, must_exist=True)
    source = MoodleSource(settings.moodle_database_url, settings.moodle_prefix)
    appdb = AppDB(settings.database_url)
    try:
        features = source.features()
        if args.company is not None and not features.has_iomad:
            raise SettingsError("MOODLE_DATABASE_URL: --company needs an IOMAD site")
        scope = TenantScope(company_ids=None if args.company is None else (args.company,))
        ctx = RunContext(source=source, scope=scope, now=int(time.time()), appdb=appdb)
        with recorded_run(appdb, viewer_id=None, company_id=args.company, report=report,
                          params=params, origin="cli", required=False) as run:  # fmt: skip
            if isinstance(report, StoredReport):
                params = report.bind_company(params, scope)
                report.run(ctx, params)  # its parameters and the query checked before any output
            with ExitStack() as stack:
                out = _open_output(args, stack)
                for chunk in _render(args.format, report, ctx, params, page, run):
                    out.write(chunk)
    except QueryTimeout as exc:
        print(f"manireports: {exc.reason}", file=sys.stderr)
        return 1
    except FieldError as exc:  # found by the run itself (a custom report's query)
        return _fail(f"{exc.field}: {exc.reason}")
    except TenantViolation as exc:
        return _fail(str(exc))
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0]
        raise SettingsError(
            f"MOODLE_DATABASE_URL: not a readable Moodle database: {reason}"
        ) from None
    finally:
        source.dispose()
        appdb.dispose()
    return 0


def _open_output(args: argparse.Namespace, stack: ExitStack) -> IO[bytes]:
    if args.output:
        return stack.enter_context(open(args.output, "wb"))  # noqa: SIM115
    if args.format in ("xlsx", "pdf") and sys.stdout.isatty():
        raise SettingsError(f"--format {args.format} is binary: give --output FILE")
    return sys.stdout.buffer


def _render(
    fmt: str, report: Report, ctx: RunContext, params: dict[str, Any], page: Any, run: RunRecord
) -> Iterator[bytes]:
    if fmt == "json":
        return _json_chunks(report, params, counted(report.stream(ctx, params, page), run))
    return export_chunks(fmt, report, ctx, params, page, run)


def _json_chunks(
    report: Report, params: dict[str, Any], rows: Iterable[dict[str, Any]]
) -> Iterator[bytes]:
    """One JSON document, written a row at a time: {report, columns, params, rows}."""
    head = {"report": report.type_name, "columns": [c.as_json() for c in report.columns],
            "params": json_row(params)}  # fmt: skip
    yield json.dumps(head, indent=2)[:-2].encode() + b',\n  "rows": ['
    for n, row in enumerate(rows):
        yield (b"," if n else b"") + b"\n    " + json.dumps(json_row(row), default=str).encode()
    yield b"\n  ]\n}\n"
