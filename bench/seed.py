"""Benchmark: seeding the demo Moodle/IOMAD site, against a raw DB-API baseline.

Measures `seed_site()` end to end (planning, every table, the log simulation, index builds),
then, in the same run and on the same database, the baseline: a raw DB-API `executemany` of the
same log rows (read back and held as tuples beforehand) into a bare copy of the log table (its
columns and primary key, no secondary indexes). rows_per_s is log rows per second of the whole
seed; the ratio says how close the full seed comes to just pouring the log rows in.

    python bench/seed.py --quick                      # ≈1 minute on SQLite
    python bench/seed.py                              # 10,000 users, 5,000,000 log rows
    python bench/seed.py --url mysql+pymysql://root@127.0.0.1:3306/test

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from sqlalchemy import Engine, MetaData
from sqlalchemy.schema import CreateTable, DropTable

from common.db import make_engine
from common.moodle.demo import seed_site
from common.moodle.tables import MoodleTables, moodle_metadata

QUICK = {"users": 2_000, "courses": 40, "companies": 10, "log_rows": 500_000}
FULL = {"users": 10_000, "courses": 200, "companies": 50, "log_rows": 5_000_000}
# A fixed end of the window, so every run seeds the same site.
NOW = 1_767_225_600
BATCH_ROWS = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a size that runs in about a minute")
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--prefix", default="bench_", help="table prefix (default bench_)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        url = args.url or f"sqlite:///{scratch}/moodle-bench.db"
        result = run(url, args.prefix, size)
    print(json.dumps(result))


def run(url: str, prefix: str, size: dict[str, int]) -> dict[str, object]:
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    print(f"seeding {size} into {url}", flush=True)
    summary = seed_site(
        url,
        prefix=prefix,
        users=size["users"],
        courses=size["courses"],
        companies=size["companies"],
        target_log_rows=size["log_rows"],
        now=NOW,
        on_progress=progress,
    )
    print(f"seed: {summary.seconds:.1f} s, {sum(summary.rows.values()):,} rows", flush=True)
    engine = make_engine(url)
    try:
        baseline_seconds = baseline(engine, prefix)
    finally:
        moodle_metadata(prefix).drop_all(engine, checkfirst=True)
        engine.dispose()
    print(f"baseline: {baseline_seconds:.1f} s", flush=True)
    rows_per_s = summary.log_rows / summary.seconds
    baseline_rows_per_s = summary.log_rows / baseline_seconds
    return {
        "bench": "seed",
        "backend": engine.dialect.name,
        "users": size["users"],
        "courses": size["courses"],
        "companies": size["companies"],
        "log_rows": summary.log_rows,
        "total_rows": sum(summary.rows.values()),
        "seconds": round(summary.seconds, 2),
        "rows_per_s": round(rows_per_s),
        "baseline_seconds": round(baseline_seconds, 2),
        "baseline_rows_per_s": round(baseline_rows_per_s),
        "ratio": round(rows_per_s / baseline_rows_per_s, 3),
    }


def baseline(engine: Engine, prefix: str) -> float:
    """Seconds to executemany the seeded log rows into a bare table of the same shape."""
    log_table = MoodleTables(prefix).logstore_standard_log
    bare = log_table.to_metadata(MetaData(), name=f"{prefix}baseline_log")
    columns = [column.name for column in log_table.columns]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"SELECT {', '.join(columns)} FROM {log_table.name} ORDER BY id")
        rows = [tuple(row) for row in cursor.fetchall()]
        print(f"baseline: {len(rows):,} log rows held as tuples", flush=True)
        dialect = engine.dialect
        cursor.execute(str(DropTable(bare, if_exists=True).compile(dialect=dialect)))
        cursor.execute(str(CreateTable(bare).compile(dialect=dialect)))
        raw.commit()
        sqlite = dialect.name == "sqlite"
        placeholder = "?" if sqlite else "%s"
        statement = (
            f"INSERT INTO {bare.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join([placeholder] * len(columns))})"
        )
        if sqlite:
            # The same loading conditions the seed gives itself.
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-262144")
        started = time.perf_counter()
        for offset in range(0, len(rows), BATCH_ROWS):
            cursor.executemany(statement, rows[offset : offset + BATCH_ROWS])
            if not sqlite:
                raw.commit()
        raw.commit()
        elapsed = time.perf_counter() - started
        cursor.execute(str(DropTable(bare).compile(dialect=dialect)))
        raw.commit()
        return elapsed
    finally:
        raw.close()


if __name__ == "__main__":
    main()
