"""Benchmark: every registered report's data endpoint against the raw SQL of the same page.

For each report, as a site admin (every company) and as a company manager (scoped by the
tenancy layer), it times GET /reports/<name>/data — sign-in session, capability and tenancy
checks, parameter parsing, the queries, chart, KPIs, JSON — through the real web tier served by
waitress on loopback. The baseline, in the same run: exactly the SQL statements that request
sent to the databases (captured at the DB-API cursor while one request runs), replayed on a raw
DB-API cursor with the same parameters and fully fetched: the raw SQL that computes the same
page, with no Python around it. It also pages the largest report (course_progress) as the page does,
rows alone: sorted by progress at page 2 and page 800, by name at page 1 and page 800. A page
after the first is cut from the order its first page took; its baseline is the raw SQL that
computes that page from nothing (the ordering pass and the page's rows).

    python bench/reports.py --quick                         # 2,000 users on SQLite
    python bench/reports.py --mariadb mysql+pymysql://root@127.0.0.1:3306/mr_reports
    python bench/reports.py --reuse MOODLE_URL APP_URL      # an already seeded, aggregated site

Full size is the 10,000-user, 5,000,000-log-row demo site; the aggregator's tables are filled
by its own pre-aggregation before timing. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from dashboard import company_of, percentile, signed_in  # noqa: E402
from databases import server_databases  # noqa: E402
from waitress.server import create_server  # noqa: E402

import web.reports.running as running  # noqa: E402
from common.appdb import AppDB  # noqa: E402
from common.migrate import upgrade  # noqa: E402
from common.moodle import MoodleSource  # noqa: E402
from common.moodle.demo import seed_site  # noqa: E402
from common.nats_server import free_port  # noqa: E402
from common.reports import registered_reports  # noqa: E402
from common.reports.snapshots import SNAPSHOTS  # noqa: E402
from common.settings import load_settings  # noqa: E402
from services.aggregator.jobs import Jobs  # noqa: E402
from web.app import create_app  # noqa: E402

QUICK = {"users": 2_000, "courses": 40, "companies": 10, "log_rows": 300_000, "requests": 40}
FULL = {"users": 10_000, "courses": 200, "companies": 50, "log_rows": 5_000_000, "requests": 40}


class StatementRecorder:
    """The statements the databases receive while `page_json` runs in this process."""

    def __init__(self, engines: dict[str, Any]):
        # One flag for every thread: a report may query from a worker thread of its own
        # (user_engagement reads both databases at once), and requests here are sequential.
        self.capturing = False
        self.recorded: list[tuple[str, str, Any]] = []
        for name, engine in engines.items():
            event.listen(engine, "before_cursor_execute", self._listener(name))
        original = running.page_json

        def recorded_page_json(wanted, **options):  # type: ignore[no-untyped-def]
            self.capturing = True
            try:
                return original(wanted, **options)
            finally:
                self.capturing = False

        running.page_json = recorded_page_json
        import web.reports.routes as routes

        routes.page_json = recorded_page_json  # the name the data view calls

    def _listener(self, name: str):  # type: ignore[no-untyped-def]
        def listen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if self.capturing:
                self.recorded.append((name, statement, parameters))

        return listen

    def take(self) -> list[tuple[str, str, Any]]:
        taken, self.recorded = self.recorded, []
        return taken


def replay_timings(
    engines: dict[str, Any], statements: list[tuple[str, str, Any]], n: int
) -> list[float]:
    """The captured statements on raw DB-API cursors, every row fetched, `n` times."""
    raw = {name: engine.raw_connection() for name, engine in engines.items()}
    timings = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            for name, statement, parameters in statements:
                cursor = raw[name].cursor()
                cursor.execute(statement, parameters)
                cursor.fetchall()
                cursor.close()
            timings.append(time.perf_counter() - started)
    finally:
        for connection in raw.values():
            connection.close()
    return timings


def endpoint_timings(session: Any, url: str, n: int) -> tuple[list[float], int]:
    timings, total = [], 0
    for _ in range(n):
        started = time.perf_counter()
        response = session.get(url)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:200]}"
        total = response.json()["pagination"]["total"]
    return timings, total


def prepare(size: dict[str, int], moodle_url: str, app_url: str, scratch: Path) -> int:
    """Seed the demo site and fill the aggregator's tables; returns the site's 'now'."""
    now = int(time.time())
    print(f"seeding {size['users']:,} users, {size['log_rows']:,} log rows", flush=True)
    seed_site(
        moodle_url, users=size["users"], courses=size["courses"], companies=size["companies"],
        days=90, target_log_rows=size["log_rows"], now=now,
    )  # fmt: skip
    settings = load_settings(
        {"MANIREPORTS_INSTANCE": str(scratch / "prep"), "MOODLE_DATABASE_URL": moodle_url,
         "DATABASE_URL": app_url}
    )  # fmt: skip
    upgrade(settings.database_url)
    appdb, source = AppDB(app_url), MoodleSource(moodle_url)
    print("pre-aggregating (the aggregator's own jobs)", flush=True)
    Jobs(settings, appdb, source).preaggregate(now=now)
    appdb.dispose()
    source.dispose()
    return now


def a_manager(moodle_url: str) -> str:
    source = MoodleSource(moodle_url)
    t = source.tables
    from sqlalchemy import select

    with source.engine.connect() as conn:
        name = conn.scalar(
            select(t.user.c.username)
            .join(t.company_users, t.company_users.c.userid == t.user.c.id)
            .where(t.company_users.c.managertype == 1, t.user.c.deleted == 0)
            .order_by(t.company_users.c.companyid)
        )
    source.dispose()
    return str(name)


def measure(
    moodle_url: str, app_url: str, scratch: Path, n: int, only: list[str] | None = None
) -> dict[str, Any]:
    settings = load_settings(
        {"MANIREPORTS_INSTANCE": str(scratch / "instance"), "MOODLE_DATABASE_URL": moodle_url,
         "DATABASE_URL": app_url}
    )  # fmt: skip
    upgrade(settings.database_url)
    app = create_app(settings)
    ctx = app.extensions["manireports"]
    engines = {"moodle": ctx.moodle.engine, "app": ctx.appdb.engine}
    recorder = StatementRecorder(engines)
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    manager = a_manager(moodle_url)
    viewers = {"admin": signed_in(base, "admin"), "manager": signed_in(base, manager)}
    cases = [(r.type_name, role, "") for r in registered_reports() for role in viewers
             if r.enabled(ctx.moodle.features()) and not (r.type_name == "company_summary"
                                                          and role == "manager")]  # fmt: skip
    # Paging as the page does it (the rows alone, `parts=rows`), near the start and deep.
    cases.append(("course_progress", "admin", "sort=progress&dir=desc&page=2&parts=rows"))
    cases.append(("course_progress", "admin", "sort=progress&dir=desc&page=800&parts=rows"))
    cases.append(("course_progress", "admin", "sort=learner&page=1&parts=rows"))
    cases.append(("course_progress", "admin", "sort=learner&page=800&parts=rows"))
    results: dict[str, Any] = {"manager_company": company_of(moodle_url, manager)}
    for name, role, query in [c for c in cases if only is None or c[0] in only]:
        url = f"{base}/reports/{name}/data?{query}"
        session = viewers[role]
        endpoint_timings(session, url, 3)  # warm-up: pools, caches, plans
        recorder.take()
        # A page after the first is cut from the order its first page took (KeyedPaging);
        # its baseline is the SQL that computes the same page from nothing: the ordering pass
        # and the page's rows, captured with no order kept.
        SNAPSHOTS.clear()
        session.get(url)
        statements = recorder.take()
        replay_timings(engines, statements, 3)
        # Alternating one of each: on a noisy machine both sides meet the same load.
        served, replayed, total = [], [], 0
        for _ in range(n):
            one, total = endpoint_timings(session, url, 1)
            served += one
            replayed += replay_timings(engines, statements, 1)
        key = f"{name}:{role}" + (f"?{query}" if query else "")
        ratio = percentile(served, 0.95) / percentile(replayed, 0.95)
        results[key] = {
            "rows": total, "statements": len(statements),
            "endpoint_p50_ms": ms(statistics.median(served)),
            "endpoint_p95_ms": ms(percentile(served, 0.95)),
            "raw_sql_p50_ms": ms(statistics.median(replayed)),
            "raw_sql_p95_ms": ms(percentile(replayed, 0.95)),
            "p95_ratio": round(ratio, 2),
        }  # fmt: skip
        print(f"{key:<36} rows {total:>7,}  endpoint p95 {ms(percentile(served, 0.95)):>7} ms"
              f"  raw SQL p95 {ms(percentile(replayed, 0.95)):>7} ms  ratio {ratio:.2f}",
              flush=True)  # fmt: skip
    server.close()
    ctx.close()
    return results


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--mariadb", metavar="URL", help="seed this MariaDB database and URL_app (dropped after)"
    )
    parser.add_argument("--reuse", nargs=2, metavar=("MOODLE_URL", "APP_URL"),
                        help="an already seeded and aggregated site: no seeding")  # fmt: skip
    parser.add_argument("--only", nargs="+", metavar="REPORT", help="time only these reports")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as tmp, ExitStack() as stack:
        scratch = Path(tmp)
        if args.reuse:
            moodle_url, app_url = args.reuse
        else:
            if args.mariadb:
                database = make_url(args.mariadb).database
                moodle_url, app_url = stack.enter_context(server_databases(args.mariadb, database))
            else:
                moodle_url = f"sqlite:///{scratch / 'moodle.db'}"
                app_url = f"sqlite:///{scratch / 'app.db'}"
            prepare(size, moodle_url, app_url, scratch)
        results = measure(moodle_url, app_url, scratch, size["requests"], args.only)
    ratios = [v["p95_ratio"] for v in results.values() if isinstance(v, dict)]
    figures = {"bench": "reports", "users": size["users"], "requests": size["requests"],
               "worst_p95_ratio": max(ratios), "reports": results}  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
