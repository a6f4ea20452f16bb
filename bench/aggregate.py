"""Benchmark: full and incremental pre-aggregation against the same figures in raw SQL.

Seeds the demo site (5,000,000 log rows at full size), then times the aggregator's whole
pre-aggregation (log time estimate, SCORM summary, engagement, at-risk scores, dashboard
caches) into a fresh app DB. In the same run and on the same database it times the baseline:
hand-written GROUP BY queries (with a window function for the session gaps) that compute the
same figures and only fetch them. Then it appends one more day of log rows and times the
incremental run, and reads the cached dashboard document as a page would.

    python bench/aggregate.py --quick       # 500,000 log rows
    python bench/aggregate.py               # 10,000 users, 5,000,000 log rows

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, make_url, select, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.analytics.caches import read_cache  # noqa: E402
from common.appdb import AppDB  # noqa: E402
from common.db import make_engine  # noqa: E402
from common.migrate import upgrade  # noqa: E402
from common.moodle import MoodleSource  # noqa: E402
from common.moodle.demo import seed_site  # noqa: E402
from common.settings import load_settings  # noqa: E402
from services.aggregator.jobs import Jobs  # noqa: E402

QUICK = {"users": 2_000, "courses": 40, "companies": 10, "log_rows": 500_000, "days": 90}
FULL = {"users": 10_000, "courses": 200, "companies": 50, "log_rows": 5_000_000, "days": 90}
NOW = 1_767_225_600  # a fixed end of the window, so every run seeds the same site
GAP = 1800  # SESSION_TIMEOUT default

# The same figures as the pre-aggregation, as plain SQL that only computes and fetches.
COUNTED = "userid > 1 AND courseid > 0 AND anonymous = 0 AND realuserid IS NULL"
# Each counted event with the previous one of its user and course (the session gaps).
GAPS = f"""
SELECT id, userid, courseid, timecreated, timecreated - timecreated % 86400 AS day,
       LAG(timecreated) OVER (PARTITION BY userid, courseid ORDER BY timecreated, id) AS prev
FROM {{p}}logstore_standard_log WHERE {COUNTED} {{extra}}
"""
# The estimated sessions the run stores: a gap over the timeout starts one.
RAW_SESSIONS = """
SELECT userid, courseid, MIN(timecreated), MAX(timecreated), MAX(timecreated) - MIN(timecreated)
FROM (SELECT userid, courseid, timecreated,
             SUM(starts) OVER (PARTITION BY userid, courseid ORDER BY timecreated, id
                               ROWS UNBOUNDED PRECEDING) AS session
      FROM (SELECT id, userid, courseid, timecreated,
                   CASE WHEN timecreated - prev <= :gap THEN 0 ELSE 1 END AS starts
            FROM ({gaps}) g) s) n
GROUP BY userid, courseid, session
"""
# Daily seconds of those sessions split at midnight: the part of a gap before midnight is
# returned beside the day it belongs to (spill_before), so one grouped pass gives every figure.
RAW_DAILY = """
SELECT userid, courseid, day, COUNT(*) AS events,
       SUM(CASE WHEN timecreated - prev <= :gap
                THEN timecreated - CASE WHEN prev > day THEN prev ELSE day END
                ELSE 0 END) AS seconds,
       SUM(CASE WHEN timecreated - prev <= :gap AND prev < day THEN day - prev ELSE 0 END)
           AS spill_before
FROM ({gaps}) g
GROUP BY userid, courseid, day
"""
# Engagement: active days and seconds over 7 and 30 days per learner and course.
RAW_ENGAGEMENT = """
SELECT userid, courseid, COUNT(DISTINCT CASE WHEN day >= :since7 THEN day END),
       COUNT(DISTINCT day),
       SUM(CASE WHEN day >= :since7 AND timecreated - prev <= :gap
                THEN timecreated - prev ELSE 0 END),
       SUM(CASE WHEN timecreated - prev <= :gap THEN timecreated - prev ELSE 0 END), MAX(day)
FROM ({gaps}) g WHERE timecreated >= :since30
GROUP BY userid, courseid
"""
RAW_TREND = """
SELECT {company} (timecreated - timecreated % 2592000) AS month, COUNT(*),
       COUNT(DISTINCT l.userid)
FROM {p}logstore_standard_log l {join}
WHERE l.userid > 1 AND timecreated >= :since
GROUP BY {company} month
"""
RAW_COMPLETION_TREND = """
SELECT {company} (timecompleted - timecompleted % 2592000) AS month, COUNT(*)
FROM {p}course_completions cc {join}
WHERE timecompleted >= :since
GROUP BY {company} month
"""
SCORM_FIGURES = """COUNT(DISTINCT {attempt}), MAX({time}),
       MAX(CASE WHEN {element} IN ('cmi.core.score.raw', 'cmi.score.raw') THEN {value} END),
       MAX(CASE WHEN {element} = 'cmi.suspend_data' THEN 1 ELSE 0 END),
       COUNT(DISTINCT CASE WHEN {element} LIKE 'cmi.interactions.%' THEN {element} END),
       MAX(CASE WHEN {element} IN ('cmi.core.total_time', 'cmi.total_time',
                                   'cmi.core.session_time', 'cmi.session_time')
                THEN {value} END),
       MAX(CASE WHEN {element} IN ('cmi.core.lesson_status', 'cmi.completion_status')
                THEN {value} END)"""
RAW_SCORM_TRACK = f"""
SELECT scormid, userid, {
    SCORM_FIGURES.format(attempt="attempt", time="timemodified", element="element", value="value")
}
FROM {{p}}scorm_scoes_track GROUP BY scormid, userid
"""
RAW_SCORM_ATTEMPT = f"""
SELECT a.scormid, a.userid, {
    SCORM_FIGURES.format(
        attempt="a.attempt", time="v.timemodified", element="e.element", value="v.value"
    )
}
FROM {{p}}scorm_attempt a JOIN {{p}}scorm_scoes_value v ON v.attemptid = a.id
JOIN {{p}}scorm_element e ON e.id = v.elementid GROUP BY a.scormid, a.userid
"""
# At-risk inputs: completion per learner and course, tracked modules per course, last access.
RAW_COMPLETION = """
SELECT cmc.userid, cm.course, COUNT(*) FROM {p}course_modules_completion cmc
JOIN {p}course_modules cm ON cm.id = cmc.coursemoduleid
WHERE cm.completion > 0 AND cmc.completionstate IN (1, 2) GROUP BY cmc.userid, cm.course
"""
RAW_MODULES = """
SELECT course, COUNT(*) FROM {p}course_modules WHERE completion > 0 AND deletioninprogress = 0
GROUP BY course
"""
RAW_ACCESS = """
SELECT u.id, u.lastaccess, la.courseid, la.timeaccess
FROM {p}user u LEFT JOIN {p}user_lastaccess la ON la.userid = u.id
"""


def raw_baseline(url: str, layout: str) -> float:
    engine = make_engine(url)
    p = "mdl_"
    since30 = (NOW // 86400 - 29) * 86400
    gaps = GAPS.format(p=p, extra="")
    recent = GAPS.format(p=p, extra="AND timecreated >= :since30 - :gap")
    company = {"company": "cu.companyid,", "p": p}
    statements = [
        (RAW_SESSIONS.format(gaps=gaps), {"gap": GAP}),
        (RAW_DAILY.format(gaps=gaps), {"gap": GAP}),
        (RAW_ENGAGEMENT.format(gaps=recent),
         {"gap": GAP, "since30": since30, "since7": since30 + 23 * 86400}),
        (RAW_TREND.format(p=p, company="", join=""), {"since": NOW - 365 * 86400}),
        (RAW_TREND.format(**company, join=f"JOIN {p}company_users cu ON cu.userid = l.userid"),
         {"since": NOW - 365 * 86400}),
        (RAW_COMPLETION_TREND.format(p=p, company="", join=""), {"since": NOW - 365 * 86400}),
        (RAW_COMPLETION_TREND.format(
            **company, join=f"JOIN {p}company_users cu ON cu.userid = cc.userid"),
         {"since": NOW - 365 * 86400}),
        ((RAW_SCORM_TRACK if layout == "track" else RAW_SCORM_ATTEMPT).format(p=p), {}),
        (RAW_COMPLETION.format(p=p), {}),
        (RAW_MODULES.format(p=p), {}),
        (RAW_ACCESS.format(p=p), {}),
    ]  # fmt: skip
    started = time.perf_counter()
    with engine.connect() as conn:
        for sql, params in statements:
            conn.execute(text(sql), params).fetchall()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def add_a_day_of_logs(url: str) -> int:
    """Copy the last day's log rows one day later, as the next day on a live site would add."""
    engine = make_engine(url)
    with engine.begin() as conn:
        last = conn.execute(text("SELECT MAX(id), MAX(timecreated) FROM mdl_logstore_standard_log"))
        max_id, max_time = last.one()
        columns = [
            row[1] for row in conn.exec_driver_sql("PRAGMA table_info(mdl_logstore_standard_log)")
        ] if engine.dialect.name == "sqlite" else []  # fmt: skip
        if not columns:
            columns = [
                r[0] for r in conn.execute(text("SHOW COLUMNS FROM mdl_logstore_standard_log"))
            ]
        rest = [c for c in columns if c not in ("id", "timecreated")]
        copied = conn.execute(
            text(
                f"INSERT INTO mdl_logstore_standard_log (id, timecreated, {', '.join(rest)}) "
                f"SELECT id + :shift, timecreated + 86400, {', '.join(rest)} "
                "FROM mdl_logstore_standard_log WHERE timecreated > :since"
            ),
            {"shift": max_id, "since": max_time - 86400},
        ).rowcount
    engine.dispose()
    return int(copied)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layout", choices=("attempt", "track"), default="attempt")
    parser.add_argument(
        "--mariadb",
        metavar="URL",
        help="a MariaDB server URL ending in a database name, e.g. "
        "mysql+pymysql://root@127.0.0.1:3306/mr_agg: the bench creates that database (the "
        "Moodle site) and one with _app appended (the app DB), and drops both at the end",
    )
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        if args.mariadb:
            with mariadb_databases(args.mariadb) as (moodle_url, app_url):
                figures = run(Path(scratch), size, args.layout, moodle_url, app_url)
        else:
            moodle_url = f"sqlite:///{Path(scratch) / 'moodle.db'}"
            figures = run(Path(scratch), size, args.layout, moodle_url, None)
    print(json.dumps(figures))


@contextmanager
def mariadb_databases(url: str) -> Iterator[tuple[str, str]]:
    """Two fresh databases on the server of `url`, dropped afterwards."""
    parsed = make_url(url)
    names = [parsed.database or "mr_agg", f"{parsed.database or 'mr_agg'}_app"]
    server_url = parsed.set(database="information_schema")  # any database that always exists
    server = make_engine(server_url.render_as_string(hide_password=False))
    preparer = server.dialect.identifier_preparer
    with server.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {preparer.quote(name)}")
            conn.exec_driver_sql(f"CREATE DATABASE {preparer.quote(name)} CHARACTER SET utf8mb4")
    try:
        yield tuple(  # type: ignore[misc]
            parsed.set(database=n).render_as_string(hide_password=False) for n in names
        )
    finally:
        with server.begin() as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {preparer.quote(name)}")
        server.dispose()


def run(
    scratch: Path, size: dict[str, int], layout: str, url: str, app_url: str | None
) -> dict[str, object]:
    print(f"seeding {size} ({layout} SCORM layout) into {make_url(url).get_backend_name()}",
          flush=True)  # fmt: skip
    seed_site(
        url, users=size["users"], courses=size["courses"], companies=size["companies"],
        days=size["days"], target_log_rows=size["log_rows"], now=NOW, layout=layout,
    )  # fmt: skip
    env = {"MANIREPORTS_INSTANCE": str(scratch / "instance"), "MOODLE_DATABASE_URL": url}
    if app_url:
        env["DATABASE_URL"] = app_url
    settings = load_settings(env)
    upgrade(settings.database_url)
    appdb = AppDB(settings.database_url)
    source = MoodleSource(url)
    jobs = Jobs(settings, appdb, source)
    raw_baseline(url, layout)  # warm the page cache for both sides alike
    print("full pre-aggregation", flush=True)
    started = time.perf_counter()
    full = jobs.preaggregate(now=NOW)
    full_s = time.perf_counter() - started
    print("raw GROUP BY baseline", flush=True)
    baseline_s = raw_baseline(url, layout)
    added = add_a_day_of_logs(url)
    print(f"incremental run after {added:,} new log rows", flush=True)
    started = time.perf_counter()
    incremental = jobs.preaggregate(now=NOW + 86400)
    incremental_s = time.perf_counter() - started
    reads = []
    with appdb.transaction() as session:
        cached = "SELECT companyid FROM manireports_cache_summary WHERE companyid IS NOT NULL"
        companies = [int(c) for c in session.scalars(text(cached))]
    for i in range(200):
        started = time.perf_counter()
        with appdb.transaction() as session:
            entry = read_cache(session, companies[i % len(companies)] if i % 2 else None,
                               datetime.fromtimestamp(time.time(), UTC))  # fmt: skip
        assert entry is not None
        reads.append(time.perf_counter() - started)
    with appdb.transaction() as session:
        from common.models.analytics import UsertimeDaily

        estimated_rows = session.scalar(select(func.count()).select_from(UsertimeDaily))
    source.dispose()
    appdb.dispose()
    return {
        "bench": "aggregate",
        "users": size["users"],
        "log_rows": size["log_rows"],
        "layout": layout,
        "database": make_url(url).get_backend_name(),
        "full_s": round(full_s, 1),
        "baseline_raw_sql_s": round(baseline_s, 1),
        "steps_s": {name: step["seconds"] for name, step in full["steps"].items()},
        "daily_rows": estimated_rows,
        "incremental_rows": added,
        "incremental_s": round(incremental_s, 2),
        "incremental_steps_s": {n: s["seconds"] for n, s in incremental["steps"].items()},
        "cache_read_p95_ms": round(statistics.quantiles(reads, n=20)[-1] * 1000, 2),
        "ratio": round(full_s / baseline_s, 2),
    }


if __name__ == "__main__":
    main()
