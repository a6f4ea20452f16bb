"""Benchmark: the XLSX export against a bare openpyxl write-only loop, and the PDF at its cap.

Both sides write the same rows of a learner-level report shape (name, course, attempts,
grade, completion %, last access, time spent) to a temporary file and read it back in 64 KiB
chunks. The project's side is `FORMATS["xlsx"].write`: typed and formatted cells, a styled
frozen header, an autofilter and an "About" sheet. The baseline is `ws.append(list)` with no
styling (openpyxl still formats the datetimes itself). The two alternate, three rounds each,
and the medians are compared: of CPU time, which the ratio is taken from (both sides are
single-threaded and CPU-bound, and CPU time holds still on a shared machine where wall time
does not), and of wall time, printed beside it. The peak memory is the maximum RSS of a
child process that does nothing but the project's export of the same rows; the PDF is timed
in a child too, at its row cap (`PDF_MAX_ROWS`), fed the whole row set.

    python bench/export.py --quick      # 20,000 rows
    python bench/export.py              # 100,000 rows

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from openpyxl import Workbook  # noqa: E402

from common.reports.base import Column  # noqa: E402
from common.reports.export import CHUNK_BYTES, FORMATS, PDF_MAX_ROWS, ExportDocument  # noqa: E402

QUICK = {"rows": 20_000}
FULL = {"rows": 100_000}
ROUNDS = 3
TARGET_RATIO = 0.8
TARGET_PEAK_MB = 200
ZONE = ZoneInfo("Europe/Berlin")
COURSES = [f"{topic} {level}" for topic in ("Fire Safety", "First Aid", "Data Protection",
           "Manual Handling", "Induction", "Food Hygiene", "Cyber Awareness", "Leadership")
           for level in ("Basics", "Advanced", "Refresher", "Assessment", "Workshop")]  # fmt: skip
COLUMNS = [
    Column("name", "Learner"),
    Column("course", "Course"),
    Column("attempts", "Attempts", "int"),
    Column("grade", "Grade", "float"),
    Column("completion", "Completion %", "percent"),
    Column("last_access", "Last access", "datetime"),
    Column("time_spent", "Time spent", "duration"),
]
START = 1_735_689_600  # 2025-01-01 UTC


def values(i: int) -> tuple[Any, ...]:
    last = datetime.fromtimestamp(START + i * 37 % 7_776_000, ZONE)
    return (f"Learner{i} Example{i % 977}", COURSES[i % len(COURSES)], i % 7,
            round(i % 1000 / 10, 2), round(i % 1001 / 10, 1), last, i * 13 % 90_000)  # fmt: skip


def report_rows(n: int) -> Iterator[dict[str, Any]]:
    keys = [c.key for c in COLUMNS]
    for i in range(n):
        yield dict(zip(keys, values(i), strict=True))


def bare_rows(n: int) -> Iterator[list[Any]]:
    for i in range(n):
        row = list(values(i))
        row[5] = row[5].replace(tzinfo=None)  # openpyxl refuses aware datetimes
        yield row


def document() -> ExportDocument:
    return ExportDocument(
        title="Learner progress", columns=COLUMNS,
        filters=[("Company", "Northwind Training"), ("Range", "Last 90 days")],
        chart={"type": "bar", "labels": COURSES[:10],
               "series": [{"label": "Completions", "data": list(range(10, 110, 10))}]},
        generated_at=datetime.fromtimestamp(START + 86400 * 90, ZONE),
    )  # fmt: skip


def timed(run: Callable[[int], int], n: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, bytes written)."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    size = run(n)
    return time.process_time() - cpu, time.perf_counter() - wall, size


def run_project(n: int) -> int:
    return sum(len(chunk) for chunk in FORMATS["xlsx"].write(document(), report_rows(n)))


def run_bare(n: int) -> int:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Report")
    for row in bare_rows(n):
        ws.append(row)
    size = 0
    with tempfile.TemporaryFile() as out:
        wb.save(out)
        out.seek(0)
        while chunk := out.read(CHUNK_BYTES):
            size += len(chunk)
    return size


def child(kind: str, n: int) -> None:
    """The child's whole job: one export, then its figures as JSON."""
    cpu, wall = time.process_time(), time.perf_counter()
    size = sum(len(chunk) for chunk in FORMATS[kind].write(document(), report_rows(n)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"cpu_s": cpu, "s": wall, "bytes": size, "peak_mb": peak_mb}))


def in_child(kind: str, n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], check=True,
                         capture_output=True, text=True, cwd=REPO)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("FORMAT", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    n = (QUICK if args.quick else FULL)["rows"]
    print(f"{n:,} rows, {len(COLUMNS)} columns; {ROUNDS} alternating rounds", flush=True)
    run_project(2_000), run_bare(2_000)  # warm imports and caches for both alike
    project: list[tuple[float, float, int]] = []
    bare: list[tuple[float, float, int]] = []
    for r in range(1, ROUNDS + 1):
        project.append(timed(run_project, n))
        bare.append(timed(run_bare, n))
        print(f"round {r}: project {project[-1][0]:.2f}s CPU / {project[-1][1]:.2f}s wall "
              f"({project[-1][2] / 1e6:.1f} MB), bare {bare[-1][0]:.2f}s CPU / "
              f"{bare[-1][1]:.2f}s wall ({bare[-1][2] / 1e6:.1f} MB)", flush=True)  # fmt: skip
    project_rate = n / statistics.median(t[0] for t in project)
    bare_rate = n / statistics.median(t[0] for t in bare)
    ratio = project_rate / bare_rate
    wall_ratio = statistics.median(t[1] for t in bare) / statistics.median(t[1] for t in project)
    print(f"xlsx: project {project_rate:,.0f} rows/s, bare openpyxl {bare_rate:,.0f} rows/s "
          f"(CPU), ratio {ratio:.2f} (target >= {TARGET_RATIO}); wall-time ratio "
          f"{wall_ratio:.2f}", flush=True)  # fmt: skip
    xlsx_child = in_child("xlsx", n)
    print(f"xlsx child: {xlsx_child['s']:.1f}s, peak RSS {xlsx_child['peak_mb']:.0f} MB "
          f"(target < {TARGET_PEAK_MB} MB)", flush=True)  # fmt: skip
    pdf_child = in_child("pdf", n)
    print(f"pdf child: first {PDF_MAX_ROWS:,} of {n:,} rows in {pdf_child['cpu_s']:.1f}s CPU "
          f"/ {pdf_child['s']:.1f}s wall, "
          f"{pdf_child['bytes'] / 1e6:.1f} MB, peak RSS {pdf_child['peak_mb']:.0f} MB",
          flush=True)  # fmt: skip
    print(json.dumps({
        "bench": "export", "rows": n, "columns": len(COLUMNS),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "xlsx_rows_s": round(project_rate), "bare_openpyxl_rows_s": round(bare_rate),
        "ratio": round(ratio, 3), "ratio_target": TARGET_RATIO,
        "wall_ratio": round(wall_ratio, 3),
        "xlsx_child_s": round(xlsx_child["s"], 2),
        "xlsx_peak_rss_mb": round(xlsx_child["peak_mb"], 1), "peak_target_mb": TARGET_PEAK_MB,
        "pdf_rows": min(n, PDF_MAX_ROWS), "pdf_cpu_s": round(pdf_child["cpu_s"], 2),
        "pdf_s": round(pdf_child["s"], 2),
        "pdf_peak_rss_mb": round(pdf_child["peak_mb"], 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
