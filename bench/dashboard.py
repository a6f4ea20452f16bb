"""Benchmark: the course completion report's data endpoint and API endpoint against raw SQL.

Seeds a demo site (10,000 users, 200 courses, 50 companies at full size), serves the real web
tier with waitress on loopback, and times GET /reports/course_completion/data (session) and
GET /api/v1/reports/course_completion (bearer token) as a site admin (every company: the
heaviest scope) and as a company manager (scoped by the tenancy layer). In the same run it
times the baselines: the same figures from one hand-written SQL query, with no web stack
around it — site-wide, and with the company filter written by hand. No cache exists on this
path: every request reads the DB.

    python bench/dashboard.py --quick
    python bench/dashboard.py                 # 10,000 users
    python bench/dashboard.py --url mysql+pymysql://root@127.0.0.1:3306/test
    python bench/dashboard.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

`--postgres` puts the Moodle DB and the app DB in two fresh databases on that server (dropped
at the end); the raw SQL baseline runs on the same Moodle database.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import requests
from databases import server_databases
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from waitress.server import create_server

from common.access.api_tokens import SCOPE_REPORTS_READ, issue, user_id_for_username
from common.appdb import AppDB
from common.db import make_engine
from common.migrate import upgrade
from common.moodle import MoodleSource
from common.moodle.demo import seed_site
from common.nats_server import free_port
from common.settings import load_settings
from web.app import create_app

QUICK = {"users": 2_000, "courses": 40, "companies": 10, "requests": 60}
FULL = {"users": 10_000, "courses": 200, "companies": 50, "requests": 200}
DAY = 86_400

# The same figures as the report's single query, written by hand: learners with an active
# enrolment and a student role, each counted in its completion bucket per course.
RAW_BUCKETS = """
SELECT c.id, c.fullname,
       CASE WHEN cc.timecompleted IS NULL THEN -1
            WHEN cc.timecompleted < :since THEN 0
            ELSE cc.timecompleted - (cc.timecompleted % 86400) END AS bucket,
       COUNT(*) AS n
FROM (SELECT DISTINCT ctx.instanceid AS courseid, ra.userid
      FROM {p}role r
      JOIN {p}role_assignments ra ON ra.roleid = r.id
      JOIN {p}context ctx ON ctx.id = ra.contextid AND ctx.contextlevel = 50
      JOIN {p}enrol e ON e.courseid = ctx.instanceid AND e.status = 0
      JOIN {p}user_enrolments ue ON ue.enrolid = e.id AND ue.userid = ra.userid
      JOIN {p}user u ON u.id = ue.userid
      WHERE r.archetype = 'student' AND ue.status = 0 AND ue.timestart <= :now
        AND (ue.timeend = 0 OR ue.timeend > :now) AND u.deleted = 0 AND e.courseid <> 1
        {company_filter}) enrolled
JOIN {p}course c ON c.id = enrolled.courseid
LEFT JOIN {p}course_completions cc ON cc.course = enrolled.courseid AND cc.userid = enrolled.userid
GROUP BY c.id, c.fullname, bucket
"""
COMPANY_FILTER = """
        AND ue.userid IN (SELECT userid FROM {p}company_users WHERE companyid = :company)
        AND e.courseid IN (SELECT courseid FROM {p}company_course WHERE companyid = :company
                           UNION SELECT courseid FROM {p}iomad_courses WHERE shared = 1
                           UNION SELECT courseid FROM {p}company_shared_courses
                                 WHERE companyid = :company)"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)]


def raw_sql_timings(url: str, company: int | None, n: int) -> list[float]:
    """The same two queries as hand-written SQL text with bound parameters.

    Each run takes a pooled connection and gives it back, as each request does: giving it
    back ends the transaction, and on PostgreSQL that drops what psycopg prepared on the
    connection. Run after run on one connection, psycopg would prepare the query after five
    runs and PostgreSQL reuse a generic plan, so the baseline would leave out the planning
    (a quarter of the manager's query on a 2,000-user site) that every request pays."""
    engine = make_engine(url)
    company_filter = COMPANY_FILTER.format(p="mdl_") if company else ""
    statements = [text(RAW_BUCKETS.format(p="mdl_", company_filter=company_filter))]
    timings = []
    for _ in range(n):
        now = int(time.time())
        params = {"now": now, "since": now - 30 * DAY, "company": company}
        with engine.connect() as conn:
            started = time.perf_counter()
            for statement in statements:
                conn.execute(statement, params).fetchall()
            timings.append(time.perf_counter() - started)
    engine.dispose()
    return timings


def signed_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    form = {"username": username, "password": "Demo-2026!", "csrf_token": token}
    login = session.post(f"{base}/login", data=form, allow_redirects=False)
    assert login.status_code == 302, f"sign-in failed for {username}"
    return session


def with_token(appdb_url: str, moodle_url: str, username: str) -> requests.Session:
    """A session that sends a reports:read API token of ``username``."""
    source, appdb = MoodleSource(moodle_url), AppDB(appdb_url)
    user_id = user_id_for_username(source, username)
    assert user_id is not None
    with appdb.transaction() as db:
        plaintext, _ = issue(db, user_id, "bench", [SCOPE_REPORTS_READ], None, None)
    source.dispose()
    appdb.dispose()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {plaintext}"
    return session


def endpoint_timings(session: requests.Session, url: str, n: int) -> tuple[list[float], int]:
    timings, rows = [], 0
    for _ in range(n):
        started = time.perf_counter()
        response = session.get(url)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:200]
        rows = len(response.json()["rows"])
    return timings, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--url", help="Moodle DB URL to seed (default: a temporary SQLite file)")
    parser.add_argument(
        "--postgres", metavar="URL",
        help="a PostgreSQL server (postgresql+psycopg://…): Moodle and app DB in fresh databases",
    )  # fmt: skip
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    databases = server_databases(args.postgres) if args.postgres else nullcontext((None, None))
    with (
        tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch,
        databases as (pg_moodle, pg_app),
    ):
        url = pg_moodle or args.url or f"sqlite:///{scratch}/moodle.db"
        print(f"seeding {size['users']} users, {size['courses']} courses into {url}", flush=True)
        # The dashboard reads no logs; a small log volume keeps the seed quick.
        summary = seed_site(
            url, users=size["users"], courses=size["courses"], companies=size["companies"],
            days=90, target_log_rows=50_000,
        )  # fmt: skip
        manager = next(x.username for x in summary.logins if x.role == "companymanager")
        # The API counts each request against its token's limit, as it always does, but the
        # limit is one the bench never reaches: 200 requests in well under a minute would
        # otherwise be refused (429) at the default 120.
        environment = {"MANIREPORTS_INSTANCE": str(Path(scratch) / "instance"),
                       "MOODLE_DATABASE_URL": url,
                       "API_RATE_LIMIT_PER_MINUTE": "1000000"}  # fmt: skip
        if pg_app:
            environment["DATABASE_URL"] = pg_app
        settings = load_settings(environment)
        upgrade(settings.database_url)
        app = create_app(settings)
        port = free_port()
        server = create_server(app, host="127.0.0.1", port=port, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        n = size["requests"]
        page = f"{base}/reports/course_completion/data?days=30"
        api = f"{base}/api/v1/reports/course_completion?days=30"
        admin_web, manager_web = signed_in(base, "admin"), signed_in(base, manager)
        admin_api = with_token(settings.database_url, url, "admin")
        manager_api = with_token(settings.database_url, url, manager)
        endpoint_timings(admin_web, page, 5)  # warm-up: pools, caches, JIT of templates
        timed = {
            "admin": endpoint_timings(admin_web, page, n),
            "manager": endpoint_timings(manager_web, page, n),
            "api_admin": endpoint_timings(admin_api, api, n),
            "api_manager": endpoint_timings(manager_api, api, n),
        }
        raw_admin = raw_sql_timings(url, None, n)
        raw_manager = raw_sql_timings(url, company_of(url, manager), n)
        server.close()
        app.extensions["manireports"].close()
    figures: dict[str, object] = {
        "bench": "dashboard", "database": make_url(url).get_backend_name(),
        "users": size["users"], "courses": size["courses"],
        "requests": n, "admin_rows": timed["admin"][1], "manager_rows": timed["manager"][1],
        "baseline_raw_sql_p50_ms": ms(statistics.median(raw_admin)),
        "baseline_raw_sql_p95_ms": ms(percentile(raw_admin, 0.95)),
        "baseline_raw_sql_manager_p50_ms": ms(statistics.median(raw_manager)),
    }  # fmt: skip
    for name, (samples, _) in timed.items():
        baseline = raw_manager if "manager" in name else raw_admin
        figures[f"{name}_p50_ms"] = ms(statistics.median(samples))
        figures[f"{name}_p95_ms"] = ms(percentile(samples, 0.95))
        ratio = statistics.median(samples) / statistics.median(baseline)
        figures[f"{name}_ratio"] = round(ratio, 2)
    figures["ratio"] = figures["admin_ratio"]
    print(json.dumps(figures))


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def company_of(url: str, username: str) -> int:
    """The company a demo manager manages (the raw SQL baseline filters by it by hand)."""
    source = MoodleSource(url)
    t = source.tables
    with source.engine.connect() as conn:
        company = conn.scalar(
            select(t.company_users.c.companyid)
            .join(t.user, t.user.c.id == t.company_users.c.userid)
            .where(t.user.c.username == username, t.company_users.c.managertype == 1)
        )
    source.dispose()
    return int(company)


if __name__ == "__main__":
    main()
