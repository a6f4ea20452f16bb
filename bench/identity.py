"""Benchmark: a mapping CSV staged and applied against a bare bulk insert of the same rows.

Both sides read the same CSV file (`lms_source,lms_user_id,google_email,full_name`, CRLF) from
disk on the same database. The project's side is `stage_file` (parse, check every row, stage it
in `lms_identity_import`, look for duplicates) then `apply_batch` (compare with the existing
mappings, insert, audit) — two separate transactions, as the CLI and page run them. The
baseline is the csv module feeding `INSERT INTO lms_identity_map` in executemany chunks of
1,000, one transaction, no checks. The tables are emptied before each round; the two sides
alternate, three rounds each, and the medians are compared (goal: ratio ≤ 2) — of CPU time on
SQLite, which works inside this process (CPU time holds still on a shared machine where wall
time does not), of wall time on MariaDB, which works in its server; both are printed.

Memory: the peak traced by tracemalloc while staging and applying files of 25k, 50k and 100k
rows (a separate, untimed pass) — flat when the file is streamed, not read whole.

    python bench/identity.py                     # SQLite, 100,000 rows
    python bench/identity.py --quick             # SQLite, 20,000 rows
    python bench/identity.py --mariadb mysql+pymysql://root@127.0.0.1:3306/mr_identity_bench
        # creates that database, drops it at the end

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import delete  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from common.analytics.upsert import insert_many  # noqa: E402
from common.appdb import AppDB  # noqa: E402
from common.db import make_engine  # noqa: E402
from common.identity.applying import apply_batch  # noqa: E402
from common.identity.rules import BUILT_IN_SOURCES, Rules  # noqa: E402
from common.identity.staging import stage_file  # noqa: E402
from common.migrate import upgrade  # noqa: E402
from common.models.access import AuditLog  # noqa: E402
from common.models.base import table_of, utcnow  # noqa: E402
from common.models.identity import IdentityImportRow, IdentityMapping  # noqa: E402

ROUNDS = 3
TARGET_RATIO = 2.0
RULES = Rules(BUILT_IN_SOURCES, ("school.example",))
MEMORY_SIZES = (25_000, 50_000, 100_000)


def write_csv(path: Path, rows: int) -> Path:
    sources = ("canvas", "moodle", "blackboard")
    with path.open("w", newline="", encoding="utf-8") as out:
        out.write("lms_source,lms_user_id,google_email,full_name\r\n")
        for i in range(rows):
            out.write(f"{sources[i % 3]},{i},user{i}@school.example,\"Learner {i}, Year {i % 13}\""
                      "\r\n")  # fmt: skip
    return path


def empty(appdb: AppDB) -> None:
    with appdb.transaction() as session:
        for model in (IdentityMapping, IdentityImportRow, AuditLog):
            session.execute(delete(model))


def baseline(appdb: AppDB, path: Path) -> int:
    table = table_of(IdentityMapping)
    now = utcnow()
    count = 0
    with appdb.transaction() as session, path.open(newline="", encoding="utf-8-sig") as text:
        reader = csv.reader(text)
        next(reader)
        chunk = []
        for source, user_id, email, name in reader:
            chunk.append({"source": source, "lms_user_id": user_id, "google_email": email,
                          "full_name": name, "created_at": now, "updated_at": now})  # fmt: skip
            if len(chunk) == 1000:
                insert_many(session, table, chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            insert_many(session, table, chunk)
            count += len(chunk)
    return count


def project(appdb: AppDB, path: Path) -> int:
    with path.open("rb") as binary:
        staged = stage_file(appdb, binary, RULES)
    assert not staged.errors, staged.errors[:3]
    return apply_batch(appdb, staged.batch_id, via="bench").imported


def timed(appdb: AppDB, side, path: Path, rows: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall, CPU) seconds of one side, from empty tables."""
    empty(appdb)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    done = side(appdb, path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert done == rows, (side.__name__, done, rows)
    return wall, cpu


def peak_memory_mb(appdb: AppDB, path: Path) -> float:
    empty(appdb)
    gc.collect()
    tracemalloc.start()
    try:
        project(appdb, path)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def run(url: str, rows: int, scratch: Path) -> dict[str, object]:
    upgrade(url)
    appdb = AppDB(url)
    backend = make_url(url).get_backend_name()
    try:
        path = write_csv(scratch / "mapping.csv", rows)
        print(f"{backend}: {rows:,} rows, {path.stat().st_size / 1e6:.1f} MB CSV", flush=True)
        times: dict[str, list[tuple[float, float]]] = {"project": [], "baseline": []}
        for round_no in range(ROUNDS):
            for name, side in (("baseline", baseline), ("project", project)):
                times[name].append(timed(appdb, side, path, rows))
            (base_wall, base_cpu), (our_wall, our_cpu) = times["baseline"][-1], times["project"][-1]
            print(f"  round {round_no + 1}: baseline {base_wall:.2f} s ({base_cpu:.2f} s CPU), "
                  f"project {our_wall:.2f} s ({our_cpu:.2f} s CPU)", flush=True)  # fmt: skip
        # SQLite works inside this process, so its CPU time is the work, steady on a shared
        # machine; MariaDB works in its server, so there the wall time is the measure.
        pick = 1 if backend == "sqlite" else 0
        base = statistics.median(t[pick] for t in times["baseline"])
        ours = statistics.median(t[pick] for t in times["project"])
        base_wall = statistics.median(t[0] for t in times["baseline"])
        our_wall = statistics.median(t[0] for t in times["project"])
        memory = {}
        for size in (s for s in MEMORY_SIZES if s <= rows) or (rows,):
            memory[size] = round(peak_memory_mb(appdb, write_csv(scratch / f"m{size}.csv", size)),
                                 1)  # fmt: skip
            print(f"  peak traced memory at {size:,} rows: {memory[size]} MB", flush=True)
        empty(appdb)
    finally:
        appdb.dispose()
    ratio = ours / base
    verdict = "OK" if ratio <= TARGET_RATIO else "over the goal"
    measure = "CPU" if pick else "wall"
    print(f"staged + applied {ours:.2f} s vs bare bulk insert {base:.2f} s ({measure} time, "
          f"medians): ratio {ratio:.2f} (goal ≤ {TARGET_RATIO}: {verdict}); wall "
          f"{our_wall:.2f} s vs {base_wall:.2f} s")  # fmt: skip
    return {"backend": backend, "rows": rows, "measure": measure, "project_s": round(ours, 3),
            "baseline_s": round(base, 3), "ratio": round(ratio, 2),
            "project_wall_s": round(our_wall, 3), "baseline_wall_s": round(base_wall, 3),
            "peak_memory_mb": memory}  # fmt: skip


@contextmanager
def mariadb_database(url: str) -> Iterator[str]:
    """A fresh database named by `url` on its server, dropped afterwards."""
    parsed = make_url(url)
    name = parsed.database or "mr_identity_bench"
    server = make_engine(parsed.set(database="information_schema")
                         .render_as_string(hide_password=False))  # fmt: skip
    quoted = server.dialect.identifier_preparer.quote(name)
    with server.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")
        conn.exec_driver_sql(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4")
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")
        server.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows instead of 100,000")
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--mariadb",
        metavar="URL",
        help="a MariaDB URL ending in a database name the bench creates and drops, e.g. "
        "mysql+pymysql://root@127.0.0.1:3306/mr_identity_bench",
    )
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        if args.mariadb:
            with mariadb_database(args.mariadb) as url:
                figures = run(url, rows, Path(scratch))
        else:
            figures = run(f"sqlite:///{Path(scratch) / 'app.db'}", rows, Path(scratch))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
