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
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text

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
RAW_TIME = """
SELECT userid, courseid, (timecreated - timecreated % 86400) AS day, COUNT(*) AS events,
       SUM(CASE WHEN prev IS NOT NULL AND timecreated - prev <= :gap
                THEN timecreated - prev ELSE 0 END) AS seconds
FROM (SELECT userid, courseid, timecreated,
             LAG(timecreated) OVER (PARTITION BY userid, courseid ORDER BY timecreated) AS prev
      FROM {p}logstore_standard_log
      WHERE userid > 1 AND courseid > 0 AND anonymous = 0 AND realuserid IS NULL) gaps
GROUP BY userid, courseid, day
"""
RAW_TREND = """
SELECT {company} (timecreated - timecreated % 2592000) AS month, COUNT(*),
       COUNT(DISTINCT l.userid)
FROM {p}logstore_standard_log l {join}
WHERE l.userid > 1 AND timecreated >= :since
GROUP BY {company} month
"""
RAW_SCORM_TRACK = """
SELECT scormid, userid, COUNT(DISTINCT attempt), MAX(timemodified),
       MAX(CASE WHEN element IN ('cmi.core.score.raw', 'cmi.score.raw') THEN value END)
FROM {p}scorm_scoes_track GROUP BY scormid, userid
"""
RAW_SCORM_ATTEMPT = """
SELECT a.scormid, a.userid, COUNT(DISTINCT a.attempt), MAX(v.timemodified),
       MAX(CASE WHEN e.element IN ('cmi.core.score.raw', 'cmi.score.raw') THEN v.value END)
FROM {p}scorm_attempt a JOIN {p}scorm_scoes_value v ON v.attemptid = a.id
JOIN {p}scorm_element e ON e.id = v.elementid GROUP BY a.scormid, a.userid
"""
RAW_COMPLETION = """
SELECT cmc.userid, cm.course, COUNT(*) FROM {p}course_modules_completion cmc
JOIN {p}course_modules cm ON cm.id = cmc.coursemoduleid
WHERE cm.completion > 0 AND cmc.completionstate IN (1, 2) GROUP BY cmc.userid, cm.course
"""


def raw_baseline(url: str, layout: str) -> float:
    engine = make_engine(url)
    p = "mdl_"
    statements = [
        (RAW_TIME.format(p=p), {"gap": GAP}),
        (RAW_TREND.format(p=p, company="", join=""), {"since": NOW - 365 * 86400}),
        (RAW_TREND.format(p=p, company="cu.companyid,",
                          join=f"JOIN {p}company_users cu ON cu.userid = l.userid"),
         {"since": NOW - 365 * 86400}),
        ((RAW_SCORM_TRACK if layout == "track" else RAW_SCORM_ATTEMPT).format(p=p), {}),
        (RAW_COMPLETION.format(p=p), {}),
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
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        figures = run(Path(scratch), size, args.layout)
    print(json.dumps(figures))


def run(scratch: Path, size: dict[str, int], layout: str) -> dict[str, object]:
    url = f"sqlite:///{scratch / 'moodle.db'}"
    print(f"seeding {size} ({layout} SCORM layout)", flush=True)
    seed_site(
        url, users=size["users"], courses=size["courses"], companies=size["companies"],
        days=size["days"], target_log_rows=size["log_rows"], now=NOW, layout=layout,
    )  # fmt: skip
    settings = load_settings({"MANIREPORTS_INSTANCE": str(scratch / "instance"),
                              "MOODLE_DATABASE_URL": url})  # fmt: skip
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
