"""Benchmark: full and incremental pre-aggregation against the same figures in raw SQL.

Seeds the demo site (5,000,000 log rows at full size), then times the aggregator's whole
pre-aggregation (log time estimate, SCORM summary, engagement, at-risk scores, dashboard
caches) into a fresh app DB. In the same run and on the same database it times the baseline:
hand-written GROUP BY queries (with a window function for the session gaps) that compute the
same figures and only fetch them. Then it appends one more day of log rows and times the
incremental run, and reads the cached dashboard document as a page would.

The growth table: on the same site, incremental runs after 1, 2 and 4 more days of log rows
(each day a copy of the site's last one); then the same on a site with half the log rows over
half the days (the same users, courses and daily activity, half the history). The goal: flat
across the two sites, at most linear in the new rows.

    python bench/aggregate.py --quick       # 500,000 and 250,000 log rows
    python bench/aggregate.py               # 10,000 users, 5,000,000 and 2,500,000 log rows

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, inspect, make_url, select, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from databases import server_cache, server_databases  # noqa: E402

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
GROWTH_DAYS = (1, 2, 4)  # new days of log rows before each incremental run of the growth table


def half_history(size: dict[str, int]) -> dict[str, int]:
    """The same site with half the history: half the log rows over half the days."""
    return {**size, "log_rows": size["log_rows"] // 2, "days": size["days"] // 2}


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
    """Copy the last day's log rows one day later, as the next day on a live site would add:
    with the next ids in time order, as Moodle's own inserts number them."""
    engine = make_engine(url)
    columns = [c["name"] for c in inspect(engine).get_columns("mdl_logstore_standard_log")]
    rest = ", ".join(c for c in columns if c not in ("id", "timecreated"))
    with engine.begin() as conn:
        last = conn.execute(text("SELECT MAX(id), MAX(timecreated) FROM mdl_logstore_standard_log"))
        max_id, max_time = last.one()
        copied = conn.execute(
            text(
                f"INSERT INTO mdl_logstore_standard_log (id, timecreated, {rest}) "
                f"SELECT :top + ROW_NUMBER() OVER (ORDER BY timecreated, id), timecreated + 86400, "
                f"{rest} FROM mdl_logstore_standard_log WHERE timecreated > :since"
            ),
            {"top": max_id, "since": max_time - 86400},
        ).rowcount
    engine.dispose()
    return int(copied)


def growth(jobs: Jobs, url: str, now: int) -> dict[str, dict[str, object]]:
    """Incremental runs after 1, 2 and 4 more days of log rows (the growth table's row)."""
    figures: dict[str, dict[str, object]] = {}
    for days in GROWTH_DAYS:
        added = sum(add_a_day_of_logs(url) for _ in range(days))
        now += days * 86400
        started = time.perf_counter()
        steps = jobs.preaggregate(now=now)["steps"]
        seconds = time.perf_counter() - started
        figures[f"{days}x"] = {"new_rows": added, "incremental_s": round(seconds, 2),
                               "steps_s": {n: s["seconds"] for n, s in steps.items()}}  # fmt: skip
        print(f"  {days} day(s), {added:,} new rows: {seconds:.2f} s", flush=True)
    return figures


def growth_table(rows: dict[int, dict[str, dict[str, object]]]) -> str:
    lines = ["incremental_s     " + "".join(f"{d}x (rows)".rjust(22) for d in GROWTH_DAYS)]
    for log_rows, runs in rows.items():
        cells = "".join(f"{r['incremental_s']:>8} ({r['new_rows']:>9,})".rjust(22)
                        for r in runs.values())  # fmt: skip
        lines.append(f"{log_rows:>10,} rows " + cells)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layout", choices=("attempt", "track"), default="attempt")
    servers = parser.add_mutually_exclusive_group()
    examples = {"--mariadb": "mysql+pymysql://root@127.0.0.1:3306/mr_agg",
                "--postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/mr_agg"}  # fmt: skip
    for option, example in examples.items():
        servers.add_argument(
            option, metavar="URL",
            help=f"a server URL ending in a database name, e.g. {example}: the bench creates that "
            "database (the Moodle site) and one with _app appended (the app DB), and drops both "
            "at the end",
        )  # fmt: skip
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    server = args.mariadb or args.postgres
    name = (server and make_url(server).database) or "mr_agg"
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        figures = on_site(Path(scratch) / "full", size, args.layout, server, name, baseline=True)
        half = on_site(Path(scratch) / "half", half_history(size), args.layout, server,
                       f"{name}_half", baseline=False)  # fmt: skip
    figures["growth"] = {size["log_rows"]: figures.pop("growth"),
                         size["log_rows"] // 2: half["growth"]}  # fmt: skip
    print(growth_table(figures["growth"]), flush=True)  # type: ignore[arg-type]
    print(json.dumps(figures))


def on_site(
    scratch: Path,
    size: dict[str, int],
    layout: str,
    server: str | None,
    name: str,
    *,
    baseline: bool,
) -> dict[str, object]:
    scratch.mkdir()
    if server:
        with server_databases(server, name) as (moodle_url, app_url):
            return run(scratch, size, layout, moodle_url, app_url, baseline=baseline)
    return run(scratch, size, layout, f"sqlite:///{scratch / 'moodle.db'}", None,
               baseline=baseline)  # fmt: skip


def run(
    scratch: Path,
    size: dict[str, int],
    layout: str,
    url: str,
    app_url: str | None,
    *,
    baseline: bool = True,
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
    if baseline:
        raw_baseline(url, layout)  # warm the page cache for both sides alike
    print("full pre-aggregation", flush=True)
    started = time.perf_counter()
    full = jobs.preaggregate(now=NOW)
    full_s = time.perf_counter() - started
    baseline_s = None
    if baseline:
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
    print(f"growth on {size['log_rows']:,} log rows", flush=True)
    grown = growth(jobs, url, NOW + 86400)
    source.dispose()
    appdb.dispose()
    # The Moodle and app DBs' sizes against the server's cache (innodb_buffer_pool_size,
    # shared_buffers): beyond it, the incremental run waits on page reads.
    cache = {"moodle": server_cache(url), "app": app_url and server_cache(app_url)}
    print(f"server cache and data (MB): {cache}", flush=True)
    return {
        "bench": "aggregate",
        "users": size["users"],
        "log_rows": size["log_rows"],
        "layout": layout,
        "database": make_url(url).get_backend_name(),
        "full_s": round(full_s, 1),
        "baseline_raw_sql_s": baseline_s and round(baseline_s, 1),
        "steps_s": {name: step["seconds"] for name, step in full["steps"].items()},
        "daily_rows": estimated_rows,
        "incremental_rows": added,
        "incremental_s": round(incremental_s, 2),
        "incremental_steps_s": {n: s["seconds"] for n, s in incremental["steps"].items()},
        "cache_read_p95_ms": round(statistics.quantiles(reads, n=20)[-1] * 1000, 2),
        "ratio": baseline_s and round(full_s / baseline_s, 2),
        "growth": grown,
        "server_cache_mb": cache,
    }


if __name__ == "__main__":
    main()
