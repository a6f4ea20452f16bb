"""`manireports identity …`: the LMS → Google Workspace identity mapping (issue 14).

- `import FILE [--source NAME] [--apply]` stages a mapping CSV or a OneRoster users.csv and prints
  one JSON object (`batch_id`, `rows`, `valid`, `errors` as [{line, field, error}]; applied,
  also `imported`, `updated`, `unchanged`). Exit 0, or 1 when any row is invalid (nothing is
  applied) or the file cannot be read.
- `apply BATCH_ID` applies a staged batch and prints the same object; exit 1 when it cannot.
  Applied (here or by `import --apply`), the object also has `parked_ready`: the parked people
  (common/identity/parked.py) mapped now. When there are any, the classroom sync of their
  courses is published over NATS_URL; an unreachable bus is told on standard error (the next
  scheduled sync retries them) and does not change the exit status.
- `resolve SOURCE USER_ID [--email FALLBACK]` prints the email; exit 1 naming a missing mapping.
- `summary` prints one JSON object: {"sources": [{source, mappings, unique_emails,
  last_import}]}.
Warnings (e.g. GOOGLE_WORKSPACE_DOMAINS unset) go to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from common.appdb import AppDB
from common.db import require_database
from common.errors import FieldError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    identity = subparsers.add_parser("identity", help="map LMS users to Google Workspace emails")
    commands = identity.add_subparsers(dest="identity_command", required=True, metavar="COMMAND")
    imp = commands.add_parser(
        "import",
        help="stage a mapping CSV (and apply it with --apply)",
        description="Stage FILE: a CSV with the header lms_source,lms_user_id,google_email"
        "[,full_name] or a OneRoster 1.1 users.csv (give --source). Prints one JSON object; "
        "exit 1 when any row is invalid (nothing is applied).",
    )
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--source", help="the LMS a OneRoster file comes from (e.g. canvas)")
    imp.add_argument("--apply", action="store_true", help="apply the batch when every row is valid")
    imp.set_defaults(func=run_import)
    apply = commands.add_parser("apply", help="apply a staged batch")
    apply.add_argument("batch_id", metavar="BATCH_ID")
    apply.set_defaults(func=run_apply)
    resolve = commands.add_parser("resolve", help="print the Google email of an LMS user")
    resolve.add_argument("source", metavar="SOURCE")
    resolve.add_argument("user_id", metavar="USER_ID")
    resolve.add_argument("--email", help="an explicit email, which wins over the mapping")
    resolve.set_defaults(func=run_resolve)
    summary = commands.add_parser("summary", help="mappings per source, as JSON")
    summary.set_defaults(func=run_summary)


def _appdb() -> tuple[AppDB, Any]:
    from common.settings import load_settings

    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url, must_exist=True)
    return AppDB(settings.database_url), settings


def _fail(exc: FieldError) -> int:
    print(f"manireports: identity: {exc.field}: {exc.reason}", file=sys.stderr)
    return 1


def run_import(args: argparse.Namespace) -> int:
    from common.identity.applying import apply_batch
    from common.identity.rules import Rules
    from common.identity.staging import stage_file

    appdb, settings = _appdb()
    try:
        try:
            with open(args.file, "rb") as binary:
                staged = stage_file(appdb, binary, Rules.from_settings(settings),
                                    source=args.source)  # fmt: skip
        except OSError as exc:
            return _fail(FieldError("file", exc.strerror or str(exc)))
        except FieldError as exc:
            return _fail(exc)
        for warning in staged.warnings:
            print(f"manireports: identity: warning: {warning}", file=sys.stderr)
        result = staged.as_dict()
        if args.apply and not staged.errors:
            try:
                applied = apply_batch(appdb, staged.batch_id, via="cli")
            except FieldError as exc:
                return _fail(exc)
            result |= applied.as_dict()
            result["parked_ready"] = _retry_parked(appdb, settings, staged.batch_id)
    finally:
        appdb.dispose()
    print(json.dumps(result, ensure_ascii=False))
    return 1 if staged.errors else 0


def run_apply(args: argparse.Namespace) -> int:
    from common.identity.applying import apply_batch
    from common.identity.staging import batch_errors

    appdb, settings = _appdb()
    try:
        try:
            applied = apply_batch(appdb, args.batch_id, via="cli")
        except FieldError as exc:
            with appdb.sessions() as session:
                errors = batch_errors(session, args.batch_id)
            if errors:
                print(json.dumps({"batch_id": args.batch_id, "errors": errors}))
            return _fail(exc)
        parked_ready = _retry_parked(appdb, settings, args.batch_id)
    finally:
        appdb.dispose()
    print(json.dumps(applied.as_dict() | {"parked_ready": parked_ready}, ensure_ascii=False))
    return 0


def _retry_parked(appdb: AppDB, settings: Any, batch_id: str) -> int:
    """Ask for a sync of the courses whose parked people the batch may have mapped; the count
    of those people."""
    from common.identity.parked import ready, retry_command

    with appdb.sessions() as session:
        found = ready(session)
    if found.courses:
        command = retry_command(batch_id, found.courses)
        problem = asyncio.run(_publish(settings, command))
        if problem:
            print(f"manireports: identity: {found.people} parked people are mapped now, but the "
                  f"sync of their courses was not queued ({problem}); the next scheduled "
                  "classroom sync retries them", file=sys.stderr)  # fmt: skip
    return found.people


async def _publish(settings: Any, command: Any) -> str | None:
    """None when published; else why not, in one line."""
    from cli.status import _embedded_url
    from common.bus import Bus
    from common.schedules.task_runs import one_line

    try:
        url = settings.nats_url or _embedded_url(settings)
        bus = await asyncio.wait_for(Bus.connect(url, name="manireports-cli"), 5)
    except Exception as exc:  # noqa: BLE001 - any failure: the scheduled sync catches up
        return one_line(str(exc), 200) or type(exc).__name__
    try:
        await asyncio.wait_for(bus.ensure_streams(), 5)
        await asyncio.wait_for(bus.publish(command.subject, command.payload,
                                           msg_id=command.msg_id), 5)  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        return one_line(str(exc), 200) or type(exc).__name__
    finally:
        # Closing fires the bus's "disconnected; reconnecting" warning: not news here.
        logging.getLogger("common.bus").disabled = True
        await bus.close()
    return None


def run_resolve(args: argparse.Namespace) -> int:
    from common.identity.resolve import MappingMissing, resolve

    appdb, _ = _appdb()
    try:
        print(resolve(appdb, args.source, args.user_id, args.email))
    except MappingMissing as exc:
        print(f"manireports: identity: {exc}", file=sys.stderr)
        return 1
    finally:
        appdb.dispose()
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from common.identity.summary import source_summaries

    appdb, _ = _appdb()
    try:
        sources = [one.as_dict() for one in source_summaries(appdb)]
    finally:
        appdb.dispose()
    print(json.dumps({"sources": sources}, ensure_ascii=False))
    return 0
