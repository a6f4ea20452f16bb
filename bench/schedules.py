"""Benchmark: N report schedules due in the same minute, run by one scheduler process, against
the same runs called in a bare loop.

The site is a small demo Moodle/IOMAD site (200 users, 10 courses, 3 companies, 7 days of log),
so that one run (`course_completion` as CSV for one plain address, in the site admin's scope)
costs a few milliseconds and the figure measures the scheduling, not the report. N schedules
(one saved through `save_schedule` by the site admin, the rest bulk copies of its row) get the
same `next_run_at`: the start of the next minute (or `--due-in S` seconds from now). One
scheduler process (`python -m services.scheduler`, its default `SCHEDULE_RUN_CONCURRENCY`)
and an embedded nats-server do the rest: the leader publishes one `run_schedule` command per
slot and moves the schedule on; the pull loops render, store the file, record the run and
queue one `scheduled_report` job. No mailer runs: the jobs stay pending.

Figures: runs/s is N over (the last run's job queued − the due time); the start delay is each
run's `started_at − due_at` (min, p50, p95, max); `within_minute` says whether the last run was
done inside the due minute's 60 s; exactly-once counts schedules without exactly one job and the
duplicate jobs (both must be 0). The baseline, in the same run with the scheduler stopped:
`common.schedules.runner.execute` called in a loop in this process on a second set of N
schedules (no bus, no leader): the bare cost of the runs themselves.

    python bench/schedules.py --n 100 --due-in 3       # quick, no wait for the minute
    python bench/schedules.py                          # 1,000 at the start of the next minute
    python bench/schedules.py --mariadb mysql+pymysql://root@127.0.0.1:3306/test

With `--mariadb`, the Moodle and app databases are two fresh databases on that server
(`mr_bench_sched_<random>` and `…_app`), dropped after. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from databases import server_databases  # noqa: E402

from common.access.viewer import load_viewer  # noqa: E402
from common.appdb import AppDB  # noqa: E402
from common.bus import Bus  # noqa: E402
from common.migrate import upgrade  # noqa: E402
from common.models.custom import ReportRun  # noqa: E402
from common.models.mail import CloudJob  # noqa: E402
from common.models.ops import ProcessedMessage  # noqa: E402
from common.models.schedules import ReportSchedule  # noqa: E402
from common.moodle import MoodleSource  # noqa: E402
from common.moodle.demo import seed_site  # noqa: E402
from common.nats_server import EmbeddedNatsServer  # noqa: E402
from common.schedules.commands import run_command  # noqa: E402
from common.schedules.runner import CONSUMER, JOB_TYPE, RunRequest, execute  # noqa: E402
from common.schedules.store import Author, ScheduleInput, save_schedule  # noqa: E402
from common.settings import Settings, load_settings  # noqa: E402
from common.tenancy import VIEW, scope_for  # noqa: E402

SITE = {"users": 200, "courses": 10, "companies": 3, "days": 7}
REPORT = "course_completion"
SECRET = "bench-secret-key-" + "x" * 32
ADMIN_USERNAME = "admin"
# The periodic tasks fire once when the leader starts, then stay out of the way.
QUIET_TASKS = ",".join(
    f"{name}=86400"
    for name in (
        "retention_cleanup",
        "scorm_summary",
        "estimate_time",
        "engagement",
        "refresh_caches",
        "risk_scores",
        "watch_email_queue",
    )
)


def progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# -- preparing the site and the schedules ---------------------------------------------------
def prepare(moodle_url: str, app_url: str) -> None:
    progress(f"seeding the demo site {SITE}")
    seed_site(
        moodle_url,
        users=SITE["users"],
        courses=SITE["courses"],
        companies=SITE["companies"],
        days=SITE["days"],
    )
    upgrade(app_url)


def create_schedules(appdb: AppDB, source: MoodleSource, n: int, group: str) -> list[int]:
    """N active daily schedules of REPORT for one plain address each, by the site admin, with
    no next run yet (the leader ignores them until `make_due`). The first is saved through
    `save_schedule` (checked and audited); the others are bulk copies of its row."""
    u = source.tables.user
    with source.engine.connect() as conn:
        admin_id = int(
            conn.execute(select(u.c.id).where(u.c.username == ADMIN_USERNAME)).scalar_one()
        )
    with appdb.transaction() as session:
        admin = load_viewer(source, session, admin_id)
    assert admin is not None and admin.is_site_admin
    author = Author(admin, scope_for(admin, None, VIEW))
    data = ScheduleInput(
        title=f"Bench {group} 0",
        report=REPORT,
        frequency="daily",
        at="08:00",
        tz="UTC",
        emails=f"{group}.0@bench.example",
        format="csv",
    )
    template = save_schedule(appdb, source, data, author)
    columns = {
        c.key: getattr(template, c.key) for c in ReportSchedule.__table__.columns if c.key != "id"
    }
    copies = [
        {
            **columns,
            "title": f"Bench {group} {i}",
            "recipients_json": json.dumps({"users": [], "emails": [f"{group}.{i}@bench.example"]}),
        }
        for i in range(1, n)
    ]
    with appdb.transaction() as session:
        for offset in range(0, len(copies), 500):
            session.execute(insert(ReportSchedule), copies[offset : offset + 500])
        session.execute(
            update(ReportSchedule)
            .where(ReportSchedule.title.like(f"Bench {group} %"))
            .values(next_run_at=None)
        )
        ids = session.scalars(
            select(ReportSchedule.id)
            .where(ReportSchedule.title.like(f"Bench {group} %"))
            .order_by(ReportSchedule.id)
        ).all()
    assert len(ids) == n, (len(ids), n)
    return [int(i) for i in ids]


def make_due(appdb: AppDB, ids: list[int], due: datetime) -> None:
    with appdb.transaction() as session:
        for offset in range(0, len(ids), 500):
            session.execute(
                update(ReportSchedule)
                .where(ReportSchedule.id.in_(ids[offset : offset + 500]))
                .values(next_run_at=due)
            )


# -- the scheduler process --------------------------------------------------------------------
class Scheduler:
    def __init__(
        self, root: Path, moodle_url: str, app_url: str, nats_url: str, extra_env: dict[str, str]
    ) -> None:
        self.nats_url = nats_url
        env = {
            **os.environ,
            "DATABASE_URL": app_url,
            "MOODLE_DATABASE_URL": moodle_url,
            "NATS_URL": nats_url,
            "SECRET_KEY": SECRET,
            "MANIREPORTS_INSTANCE": str(root / "instance"),
            "SCHEDULER_LEASE_TTL_S": "2",
            "TASK_INTERVALS": QUIET_TASKS,
            **extra_env,
        }
        self.log_path = root / "scheduler.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.scheduler"],
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def health(self) -> list[dict[str, Any]]:
        async def ask() -> list[dict[str, Any]]:
            bus = await Bus.connect(self.nats_url, name="bench")
            try:
                return await bus.gather("mr.health.scheduler", {}, wait_s=0.3)
            finally:
                await bus.close()

        return asyncio.run(ask())

    def wait_leading(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the scheduler exited; see {self.log_path}")
            if any(r.get("leader") for r in self.health()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the scheduler did not take the lease in {timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def next_due(due_in: float | None) -> datetime:
    """The start of the next minute at least 5 s away, or `due_in` seconds from now."""
    now = datetime.now(UTC)
    if due_in is not None:
        return (now + timedelta(seconds=due_in)).replace(microsecond=0)
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return start if start - now >= timedelta(seconds=5) else start + timedelta(minutes=1)


def msg_ids(ids: list[int], due: datetime) -> list[str]:
    return [run_command(i, due).msg_id for i in ids]


def processed_count(appdb: AppDB, ids: list[str]) -> int:
    p = ProcessedMessage
    total = 0
    with appdb.transaction() as session:
        for offset in range(0, len(ids), 500):
            total += int(
                session.scalar(
                    select(func.count())
                    .select_from(p)
                    .where(p.consumer == CONSUMER, p.msg_id.in_(ids[offset : offset + 500]))
                )
                or 0
            )
    return total


def wait_all_run(appdb: AppDB, ids: list[str], timeout_s: float, scheduler: Scheduler) -> bool:
    deadline = time.monotonic() + timeout_s
    shown = -1
    while time.monotonic() < deadline:
        done = processed_count(appdb, ids)
        if done != shown and (done == len(ids) or done - shown >= max(len(ids) // 10, 1)):
            progress(f"{done}/{len(ids)} runs done")
            shown = done
        if done >= len(ids):
            return True
        if scheduler.process.poll() is not None:
            raise RuntimeError(f"the scheduler exited; see {scheduler.log_path}")
        time.sleep(0.2)
    return False


# -- the figures --------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def figures(appdb: AppDB, ids: list[int], due: datetime) -> dict[str, Any]:
    wanted = set(ids)
    r, p, j = ReportRun, ProcessedMessage, CloudJob
    with appdb.transaction() as session:
        runs = session.execute(
            select(r.schedule_id, r.started_at, r.finished_at, r.status).where(
                r.origin == "schedule", r.due_at == due
            )
        ).all()
        names = msg_ids(ids, due)
        finished = [
            at
            for offset in range(0, len(names), 500)
            for at in session.scalars(
                select(p.processed_at).where(
                    p.consumer == CONSUMER, p.msg_id.in_(names[offset : offset + 500])
                )
            )
        ]
        payloads = session.scalars(select(j.payload).where(j.type == JOB_TYPE)).all()
    runs = [row for row in runs if row.schedule_id in wanted]
    first_start: dict[int, datetime] = {}
    for row in runs:
        if row.schedule_id not in first_start or row.started_at < first_start[row.schedule_id]:
            first_start[row.schedule_id] = row.started_at
    delays = [(started - due).total_seconds() for started in first_start.values()]
    due_text_ = run_command(0, due).payload["due"]
    jobs = Counter(
        int(payload["schedule"])
        for payload in map(json.loads, payloads)
        if payload.get("due") == due_text_ and int(payload["schedule"]) in wanted
    )
    runs_per_schedule = Counter(row.schedule_id for row in runs)
    last = max(finished) if finished else due
    span = (last - due).total_seconds()
    return {
        "runs": len(runs),
        "runs_not_ok": sum(1 for row in runs if row.status != "ok"),
        "schedules_with_more_than_one_run": sum(1 for c in runs_per_schedule.values() if c > 1),
        "last_done_after_due_s": round(span, 3),
        "runs_per_s": round(len(ids) / span, 1) if span > 0 else None,
        "start_delay_s": {
            "min": round(min(delays), 3),
            "p50": round(statistics.median(delays), 3),
            "p95": round(percentile(delays, 0.95), 3),
            "max": round(max(delays), 3),
        }
        if delays
        else None,
        "within_minute": bool(finished) and span < 60 and len(first_start) == len(ids),
        "schedules_not_exactly_one_job": sum(1 for i in ids if jobs.get(i, 0) != 1),
        "duplicate_jobs": sum(c - 1 for c in jobs.values() if c > 1),
    }


def baseline(
    appdb: AppDB, source: MoodleSource, settings: Settings, ids: list[int], due: datetime
) -> float:
    """Seconds to run the N schedules with `execute` in a bare loop, in this process."""
    started = time.perf_counter()
    for schedule_id, msg_id in zip(ids, msg_ids(ids, due), strict=True):
        outcome = execute(appdb, source, settings, RunRequest(schedule_id, due, msg_id))
        assert outcome.job_id is not None, schedule_id
    return time.perf_counter() - started


# -- the run ------------------------------------------------------------------------------------
def run(args: argparse.Namespace, moodle_url: str, app_url: str, root: Path) -> dict[str, Any]:
    prepare(moodle_url, app_url)
    settings = load_settings(
        {
            "MANIREPORTS_INSTANCE": str(root / "bench"),
            "SECRET_KEY": SECRET,
            "MOODLE_DATABASE_URL": moodle_url,
            "DATABASE_URL": app_url,
        }
    )
    appdb, source = AppDB(app_url), MoodleSource(moodle_url)
    nats = EmbeddedNatsServer(root / "nats").start()
    scheduler: Scheduler | None = None
    try:
        progress(f"creating 2 × {args.n} schedules ({REPORT}, csv, one address each)")
        project_ids = create_schedules(appdb, source, args.n, "project")
        baseline_ids = create_schedules(appdb, source, args.n, "baseline")
        extra = {"SCHEDULE_RUN_CONCURRENCY": str(args.concurrency)} if args.concurrency else {}
        scheduler = Scheduler(root, moodle_url, app_url, nats.url, extra)
        scheduler.wait_leading()
        due = next_due(args.due_in)
        make_due(appdb, project_ids, due)
        progress(f"{args.n} schedules due at {due:%H:%M:%S}; one scheduler process is leading")
        ok = wait_all_run(
            appdb,
            msg_ids(project_ids, due),
            (due - datetime.now(UTC)).total_seconds() + args.timeout,
            scheduler,
        )
        health = scheduler.health()
        scheduler.stop()
        scheduler = None
        project = figures(appdb, project_ids, due)
        project["all_done_before_timeout"] = ok
        project["scheduler"] = {
            k: v
            for k, v in (health[0] if health else {}).items()
            if k in ("schedules_published", "schedule_runs", "processed")
        }
        progress(f"project: {json.dumps(project)}")
        progress(f"baseline: execute() × {args.n} in a loop, in this process")
        seconds = baseline(appdb, source, settings, baseline_ids, due)
        base_rate = args.n / seconds
        progress(f"baseline: {args.n} in {seconds:.2f} s = {base_rate:.1f} runs/s")
    finally:
        if scheduler is not None:
            scheduler.stop()
        nats.stop()
        appdb.dispose()
        source.dispose()
    return {
        "project": project,
        "baseline_runs_per_s": round(base_rate, 1),
        "baseline_s": round(seconds, 3),
        "ratio": round(project["runs_per_s"] / base_rate, 3) if project["runs_per_s"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="schedules due at once (1000)")
    parser.add_argument(
        "--due-in",
        type=float,
        metavar="S",
        help="due S seconds from now instead of at the next minute's start",
    )
    parser.add_argument(
        "--mariadb",
        metavar="URL",
        help="Moodle and app DB on this MariaDB server (fresh, dropped after)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="SCHEDULE_RUN_CONCURRENCY for the scheduler (default: its own)",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds after due (300)")
    args = parser.parse_args()
    # This process's health questions connect and close: not worth a warning each.
    logging.getLogger("common.bus").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        if args.mariadb:
            moodle_url, app_url = stack.enter_context(server_databases(args.mariadb))
        else:
            moodle_url, app_url = f"sqlite:///{root / 'moodle.db'}", f"sqlite:///{root / 'app.db'}"
        result = run(args, moodle_url, app_url, root)
        backend = make_url(app_url).get_backend_name()
    project = result["project"]
    delay = project["start_delay_s"] or {}
    print(
        f"\n{'backend':<34}{backend}\n{'schedules':<34}{args.n}\n"
        f"{'runs/s (project)':<34}{project['runs_per_s']}\n"
        f"{'runs/s (baseline execute loop)':<34}{result['baseline_runs_per_s']}\n"
        f"{'ratio project/baseline':<34}{result['ratio']}\n"
        f"{'last run done after due (s)':<34}{project['last_done_after_due_s']}\n"
        f"{'start delay min/p50/p95/max (s)':<34}{delay.get('min')} / {delay.get('p50')} / "
        f"{delay.get('p95')} / {delay.get('max')}\n"
        f"{'all within the minute':<34}{project['within_minute']}\n"
        f"{'schedules with ≠1 job':<34}{project['schedules_not_exactly_one_job']}\n"
        f"{'duplicate jobs':<34}{project['duplicate_jobs']}",
        flush=True,
    )
    print(
        json.dumps(
            {
                "bench": "schedules",
                "backend": backend,
                "n": args.n,
                "site": SITE,
                "report": REPORT,
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
