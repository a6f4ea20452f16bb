"""`manireports sql validate|run`: check a custom SQL query the way the report editor does, and
run it against the site's Moodle database with the same validator, time limit and row cap.

Exit status: 0 accepted (or run); 1 the query was rejected, stopped at its time limit or
refused by the database; 2 a bad option or parameter value (one line naming it).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from sqlalchemy.exc import OperationalError

from cli.report import company_id
from common.customsql.execute import (
    MAX_ROWS_LIMIT,
    TIMEOUT_MAX_S,
    QueryFailed,
    QueryResult,
    QueryTimeout,
    run_checked,
)
from common.customsql.params import (
    PARAM_TYPES,
    QueryParam,
    declare_params,
    default_label,
    parse_param_values,
)
from common.customsql.validator import QueryRejected, validate
from common.db import require_database
from common.errors import FieldError
from common.moodle import MoodleSource
from common.settings import SettingsError, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sql = subparsers.add_parser("sql", help="validate or run a custom SQL report query")
    commands = sql.add_subparsers(dest="sql_command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "validate",
        help="check a query against the custom report rules",
        description="Exit 0 when the query is accepted; 1 with the reason on standard error when "
        "it is rejected. With --jsonl, FILE (or standard input) holds one JSON string (a query) "
        'per line, and one line is printed per input line: {"ok": true} or {"ok": false, '
        '"error": "…"} (a line that is not a JSON string gets ok false too); the exit status is '
        "0 when every line is ok, else 1.",
    )
    check.add_argument("file", nargs="?", metavar="FILE", help="the query (default: stdin)")
    check.add_argument("--jsonl", action="store_true", help="one JSON string per line")
    check.add_argument("--prefix", help="Moodle table prefix (default: MOODLE_PREFIX, mdl_)")
    check.set_defaults(func=run_validate)
    run = commands.add_parser(
        "run",
        help="run a query on the Moodle database, read-only and within limits",
        description="Validate the query, then run it on MOODLE_DATABASE_URL in a read-only "
        "transaction with a server-side time limit and a row cap. Exit 1 when the query is "
        "rejected, stopped at its time limit or refused by the database; 2 for a bad option "
        "or parameter value.",
    )
    run.add_argument("file", nargs="?", metavar="FILE", help="the query (default: stdin)")
    run.add_argument("--format", choices=("json", "csv"), default="csv", help="default csv")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a value for :NAME (repeatable), e.g. --param courseid=4")  # fmt: skip
    run.add_argument("--param-type", action="append", default=[], metavar="NAME=TYPE",
                     help=f"type of :NAME, one of {', '.join(PARAM_TYPES)} (default text; "
                          "companyid: company)")  # fmt: skip
    run.add_argument("--company", type=company_id,
                     help="run for this IOMAD company: :companyid is fixed to it")  # fmt: skip
    run.add_argument("--timeout", type=_timeout, default=30.0, metavar="SECONDS",
                     help="time limit on the database (default 30)")  # fmt: skip
    run.add_argument("--max-rows", type=_max_rows, default=10_000, metavar="N",
                     help="at most N rows (default 10000); a cut is said on stderr")  # fmt: skip
    run.set_defaults(func=run_query)


def _timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= TIMEOUT_MAX_S:
        raise argparse.ArgumentTypeError(f"must be seconds, more than 0, at most {TIMEOUT_MAX_S:g}")
    return value


def _max_rows(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ROWS_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_ROWS_LIMIT}")
    return int(raw)


def _read(path: str | None) -> str:
    if path is None or path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None


def _prefix(args: argparse.Namespace) -> str:
    return args.prefix if args.prefix is not None else load_settings().moodle_prefix


def run_validate(args: argparse.Namespace) -> int:
    prefix = _prefix(args)
    source = _read(args.file)
    if args.jsonl:
        return _validate_lines(source.splitlines(), prefix, sys.stdout)
    try:
        validate(source, prefix)
    except QueryRejected as exc:
        print(f"manireports: query rejected: {exc}", file=sys.stderr)
        return 1
    return 0


def _validate_lines(lines: Iterable[str], prefix: str, out: IO[str]) -> int:
    status = 0
    for line in lines:
        answer: dict[str, Any] = {"ok": True}
        try:
            query = json.loads(line)
            if not isinstance(query, str):
                raise ValueError(f"not a JSON string but {type(query).__name__}")
            validate(query, prefix)
        except QueryRejected as exc:
            answer = {"ok": False, "error": str(exc)}
        except ValueError as exc:  # json.JSONDecodeError is one
            answer = {"ok": False, "error": f"not a JSON string: {exc}"}
        if not answer["ok"]:
            status = 1
        out.write(json.dumps(answer, ensure_ascii=False) + "\n")
    return status


def _fail(message: str, status: int) -> int:
    print(f"manireports: {message}", file=sys.stderr)
    return status


def _declared(args: argparse.Namespace, params: tuple[str, ...]) -> list[QueryParam]:
    stored = []
    for item in args.param_type:
        name, sep, kind = item.partition("=")
        if not sep or kind not in PARAM_TYPES:
            raise FieldError(
                "param-type", f"{item[:60]!r} is not NAME=TYPE (TYPE: {'|'.join(PARAM_TYPES)})"
            )
        if name not in params:
            raise FieldError("param-type", f"the query has no parameter :{name[:40]}")
        stored.append(QueryParam(name, kind, default_label(name)))
    return declare_params(_Params(params), stored)


class _Params:
    def __init__(self, params: tuple[str, ...]) -> None:
        self.params = params


def _raw_values(args: argparse.Namespace, params: tuple[str, ...]) -> dict[str, str]:
    raw: dict[str, str] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise FieldError("param", f"{item[:60]!r} is not NAME=VALUE")
        if name not in params:
            known = ", ".join(f":{p}" for p in params) or "none"
            raise FieldError("param", f"the query has no parameter :{name[:40]} ({known})")
        raw[name] = value
    return raw


def run_query(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        checked = validate(_read(args.file), settings.moodle_prefix)
    except QueryRejected as exc:
        return _fail(f"query rejected: {exc}", 1)
    try:
        declared = _declared(args, checked.params)
        values = parse_param_values(declared, _raw_values(args, checked.params),
                                    bound_company=args.company)  # fmt: skip
    except FieldError as exc:
        return _fail("; ".join(_flagged(e) for e in exc.errors), 2)
    require_database("MOODLE_DATABASE_URL", settings.moodle_database_url, must_exist=True)
    source = MoodleSource(settings.moodle_database_url, settings.moodle_prefix)
    try:
        result = run_checked(source, checked, values, timeout_s=args.timeout,
                             max_rows=args.max_rows)  # fmt: skip
    except QueryTimeout as exc:
        return _fail(f"{exc.reason} (--timeout)", 1)
    except QueryFailed as exc:
        return _fail(exc.reason, 1)
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0]
        raise SettingsError(f"MOODLE_DATABASE_URL: not a readable database: {reason}") from None
    finally:
        source.dispose()
    _write(args.format, result, sys.stdout)
    if result.truncated:
        print(f"manireports: only the first {args.max_rows} rows (--max-rows)", file=sys.stderr)
    return 0


def _flagged(error: FieldError) -> str:
    """The option a bad value came in by, so the one-line error names what to fix."""
    if error.field in ("param", "param-type"):
        return f"--{error.field}: {error.reason}"
    return f"--param {error.field}: {error.reason}"


def _write(fmt: str, result: QueryResult, out: IO[str]) -> None:
    rows = [[_plain(v) for v in row] for row in result.rows]
    if fmt == "json":
        document = {"columns": result.columns, "rows": rows, "truncated": result.truncated,
                    "elapsed_ms": round(result.elapsed_ms, 1)}  # fmt: skip
        out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(["" if v is None else v for v in row] for row in rows)


def _plain(value: Any) -> Any:
    """A database value as JSON has it (DECIMAL sums as numbers, bytes as text)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value
