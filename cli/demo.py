"""`manireports demo seed`: generate the deterministic demo Moodle/IOMAD site.

The target defaults to MOODLE_DATABASE_URL and MOODLE_PREFIX, so a fresh checkout gets a site
in instance/moodle-demo.db that the web and workers then read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from common.moodle.demo import DemoSizeError, SeedSummary, seed_site
from common.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = subparsers.add_parser("demo", help="demo Moodle/IOMAD site")
    commands = demo.add_subparsers(dest="demo_command", required=True, metavar="COMMAND")
    seed = commands.add_parser(
        "seed",
        help="(re)create a deterministic demo Moodle/IOMAD site",
        description="Drop and recreate every Moodle table of the prefix, then fill them with "
        "a deterministic demo site: same options, same data.",
    )
    seed.add_argument("--users", type=int, default=500, help="accounts besides guest and admin")
    seed.add_argument("--courses", type=int, default=20)
    seed.add_argument("--companies", type=int, default=3, help="IOMAD companies")
    seed.add_argument("--days", type=int, default=30, help="days of activity up to now")
    seed.add_argument("--seed", type=int, default=1, help="same seed, same site")
    seed.add_argument(
        "--layout",
        choices=("attempt", "track"),
        default="attempt",
        help="SCORM tracking tables: attempt (Moodle 4.3+) or track (4.2 and older)",
    )
    seed.add_argument("--no-iomad", action="store_true", help="plain Moodle: no IOMAD tables")
    size = seed.add_mutually_exclusive_group()
    size.add_argument("--logs-per-user-day", type=float, default=4.0, metavar="N")
    size.add_argument("--log-rows", type=int, metavar="N", help="log rows in total")
    seed.add_argument("--now", type=int, metavar="UNIX_TIME", help="end of the window")
    seed.add_argument("--url", help="Moodle database URL (default: MOODLE_DATABASE_URL)")
    seed.add_argument("--prefix", help="table prefix (default: MOODLE_PREFIX, mdl_)")
    seed.add_argument("--verbose", action="store_true", help="report progress on stderr")
    seed.set_defaults(func=run_seed)


def run_seed(args: argparse.Namespace) -> int:
    url, prefix = args.url, args.prefix
    if url is None or prefix is None:
        settings = load_settings()
        url = url or settings.moodle_database_url
        prefix = settings.moodle_prefix if prefix is None else prefix
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        summary = seed_site(
            url,
            prefix=prefix,
            users=args.users,
            courses=args.courses,
            companies=args.companies,
            days=args.days,
            seed=args.seed,
            layout=args.layout,
            iomad=not args.no_iomad,
            logs_per_user_day=args.logs_per_user_day,
            target_log_rows=args.log_rows,
            now=args.now,
            on_progress=(lambda message: print(message, file=sys.stderr)) if args.verbose else None,
        )
    except DemoSizeError as error:
        print(f"demo seed: {error}", file=sys.stderr)
        return 2
    print(_summary_text(summary, parsed.render_as_string(hide_password=True)))
    return 0


def _summary_text(summary: SeedSummary, where: str) -> str:
    rows = summary.rows
    shape = "IOMAD" if summary.iomad else "plain Moodle"
    lines = [
        f"Seeded {where} (prefix {summary.prefix}, {shape}, SCORM layout "
        f"{summary.scorm_layout}) in {summary.seconds:.1f} s:",
        f"  {rows.get('user', 0):,} users (with guest and admin), "
        f"{rows.get('course', 1) - 1:,} courses, {rows.get('company', 0):,} companies, "
        f"{rows.get('user_enrolments', 0):,} enrolments, "
        f"{summary.log_rows:,} log rows over {summary.days} days",
        "Demo logins:",
    ]
    width = max(len(login.role) for login in summary.logins)
    lines += [
        f"  {login.role:<{width}}  {login.username:<28}  {login.password}"
        for login in summary.logins
    ]
    return "\n".join(lines)
