"""Benchmark: what live job monitoring costs the database, with 1, 10 and 50 people watching.

Serves the real web tier (waitress on loopback) on a small demo site, creates a running email
job (a stand-in mailer marks recipients sent at a steady rate, through its own connection, so
its writes are not counted) and opens N viewers, each signed in as a site admin in its own
HTTP session and polling GET /jobs/progress?job=… once a second, as the job page does. A
SQLAlchemy event hook on the web tier's app-DB engine counts every statement:

- ``job_reads_per_s``: statements that read the job's tables (the snapshot) — the contract
  is at most one per job per second per web process, whatever N is;
- ``all_statements_per_s``: every app-DB statement the polls caused (the sign-in session
  check of each request included);

and, in the same run, the baseline: the same N viewers each running the page's former
per-request reads (the job by id through the scoped loader, the recipient breakdown, the
errors and the dead letters) once a second, straight on the database.

    python bench/job_monitor.py --quick
    python bench/job_monitor.py
    python bench/job_monitor.py --url mysql+pymysql://root@127.0.0.1:3306/test

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, event, select, text, update
from waitress.server import create_server

from common.appdb import AppDB
from common.mail.job_status import open_dead_chunks
from common.mail.jobs import RecipientSpec, create_job
from common.mail.monitor import job_progress, recent_errors
from common.migrate import upgrade
from common.models.base import utcnow
from common.models.mail import CloudJob, CloudRecipient
from common.moodle.demo import seed_site
from common.nats_server import free_port
from common.settings import load_settings
from common.tenancy import TenantScope, load_job
from web.app import create_app

QUICK = {"seconds": 4, "recipients": 5_000}
FULL = {"seconds": 10, "recipients": 20_000}
VIEWERS = (1, 10, 50)
SEND_RATE_PER_S = 200.0
EVERY_COMPANY = TenantScope(company_ids=None)  # the admin the viewers sign in as
JOB_TABLES = re.compile(r"manireports_cloud_(jobs|recip|dead|conf)\b")


class StatementCounter:
    """Counts the statements run on one engine, split into job-table reads and the rest."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine = engine
        self.job = 0
        self.other = 0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            if JOB_TABLES.search(statement):
                self.job += 1
            else:
                self.other += 1

    def reset(self) -> tuple[int, int]:
        with self._lock:
            counts = (self.job, self.other)
            self.job = self.other = 0
            return counts

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


def simulate_mailer(appdb: AppDB, job_id: int, stop: threading.Event) -> None:
    """Mark recipients sent in sub-batches of 10 at SEND_RATE_PER_S, as mailers record them."""
    with appdb.transaction() as session:
        ids = list(session.scalars(select(CloudRecipient.id).where(CloudRecipient.jobid == job_id)
                                   .order_by(CloudRecipient.id)))  # fmt: skip
        session.execute(update(CloudJob).where(CloudJob.id == job_id)
                        .values(status="processing", timestarted=utcnow()))  # fmt: skip
    batch, pause = 10, 10 / SEND_RATE_PER_S
    for start in range(0, len(ids), batch):
        if stop.is_set():
            return
        group = ids[start : start + batch]
        with appdb.transaction() as session:
            session.execute(update(CloudRecipient).where(CloudRecipient.id.in_(group))
                            .values(status="sent", timesent=utcnow()))  # fmt: skip
            session.execute(update(CloudJob).where(CloudJob.id == job_id)
                            .values(emails_sent=CloudJob.emails_sent + len(group)))  # fmt: skip
        time.sleep(pause)


def signed_in_session(base: str, username: str, password: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, "no CSRF token on the sign-in page"
    response = http.post(f"{base}/login", timeout=10, allow_redirects=False, data={
        "csrf_token": token[1], "username": username, "password": password})  # fmt: skip
    assert response.status_code in (302, 303), f"sign-in failed: {response.status_code}"
    return http


def poll(viewers: int, seconds: float, once) -> list[float]:  # type: ignore[no-untyped-def]
    """``viewers`` threads each calling ``once(i)`` every second (staggered); latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def viewer(index: int) -> None:
        time.sleep(random.random())  # noqa: S311 - browsers open the page at different times
        while time.monotonic() < deadline:
            began = time.perf_counter()
            once(index)
            took = time.perf_counter() - began
            with lock:
                latencies.append(took)
            time.sleep(max(0.0, 1.0 - took))

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(viewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--url", help="app DB URL (default: a SQLite file)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    summary = seed_site(f"sqlite:///{root / 'moodle.db'}", users=200, courses=4, companies=2,
                        days=7, seed=3)  # fmt: skip
    admin = next(login for login in summary.logins if login.role == "admin")
    with create_engine(f"sqlite:///{root / 'moodle.db'}").connect() as conn:
        company = int(conn.execute(text("SELECT MIN(id) FROM mdl_company")).scalar_one())
    settings = load_settings({
        "MANIREPORTS_INSTANCE": str(root / "instance"), "SECRET_KEY": "bench-" + "k" * 40,
        "DATABASE_URL": args.url or f"sqlite:///{root / 'app.db'}",
        "MOODLE_DATABASE_URL": f"sqlite:///{root / 'moodle.db'}", "NATS_URL": "nats://127.0.0.1:1",
    })  # fmt: skip
    upgrade(settings.database_url)
    writer = AppDB(settings.database_url)  # the stand-in mailer's own connection: not counted
    app = create_app(settings)
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=16)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    appdb = app.extensions["manireports"].appdb
    counter = StatementCounter(appdb.engine)
    results = []
    try:
        for viewers in VIEWERS:
            with writer.transaction() as session:
                recipients = (RecipientSpec(email=f"l{i}@bench.example", data={})
                              for i in range(size["recipients"]))  # fmt: skip
                job_id = create_job(session, company_id=company, job_type="bulk",
                                    recipients=recipients, source="api", subject="Hi",
                                    html="<p>Hi</p>").id  # fmt: skip
            stop = threading.Event()
            threading.Thread(
                target=simulate_mailer, args=(writer, job_id, stop), daemon=True
            ).start()
            sessions = [signed_in_session(base, admin.username, admin.password)
                        for _ in range(viewers)]  # fmt: skip
            url = f"{base}/jobs/progress?job={job_id}"
            for http in sessions:  # the page load that precedes polling
                http.get(f"{base}/jobs/view?job={job_id}", timeout=30)
            counter.reset()
            began = time.monotonic()

            def through_http(i: int, sessions: list = sessions, url: str = url) -> None:
                sessions[i].get(url, timeout=30).raise_for_status()

            latencies = poll(viewers, size["seconds"], through_http)
            elapsed = time.monotonic() - began
            job_reads, other = counter.reset()

            def naive(_: int, job_id: int = job_id, scope: TenantScope = EVERY_COMPANY) -> None:
                with appdb.transaction() as session:
                    job = load_job(session, job_id, scope)
                    job_progress(session, job)
                    recent_errors(session, job_id)
                    open_dead_chunks(session, job_id)

            base_latencies = poll(viewers, size["seconds"], naive)
            base_elapsed = size["seconds"]
            base_reads, _ = counter.reset()
            stop.set()
            row = {
                "viewers": viewers,
                "polls_per_s": round(len(latencies) / elapsed, 1),
                "job_reads_per_s": round(job_reads / elapsed, 2),
                "all_statements_per_s": round((job_reads + other) / elapsed, 1),
                "p50_ms": round(statistics.median(latencies) * 1000, 1),
                "baseline_job_reads_per_s": round(base_reads / base_elapsed, 1),
                "baseline_p50_ms": round(statistics.median(base_latencies) * 1000, 1),
            }
            results.append(row)
            print(f"{viewers:>3} viewers: {row['polls_per_s']:>5} polls/s → "
                  f"{row['job_reads_per_s']:>5} job reads/s "
                  f"({row['all_statements_per_s']} app-DB statements/s in all, p50 "
                  f"{row['p50_ms']} ms) | naive per-viewer reads: "
                  f"{row['baseline_job_reads_per_s']} job reads/s", flush=True)  # fmt: skip
    finally:
        counter.close()
        server.close()
        writer.dispose()
    print(json.dumps({"bench": "job_monitor", "db": settings.database_url.split(":")[0],
                      "seconds": size["seconds"], "recipients": size["recipients"],
                      "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()
