"""Chaos run (issue 15): the whole system on a 3-node NATS cluster under a combined load,
once without faults and once while processes are SIGKILLed at random, with the invariants
checked at the end.

The stack: a 3-node JetStream cluster (NATS_REPLICAS=3), the app DB on MariaDB (`--mariadb`)
or SQLite, a small demo Moodle site, 2 web processes (the real app, as bench/heartbeat.py
serves it: its clock read from `X-Bench-Time`), 2 aggregators, 3 mailers, 2 schedulers and
an SMTP sink recording each recipient's arrival time. Each phase runs the same workload: a
bulk mail job to the sink under the shared send quota, heartbeats at a fixed rate across both
web processes, and batches of report schedules falling due during the job. In the chaos phase
a mailer, an aggregator, the leading scheduler, one web process and one NATS server are
SIGKILLed in random order at random moments and each is started again after a pause.

Checked at the end: every recipient sent exactly once or dead-lettered with a reason (lost
must be 0; duplicates counted against the bound of the killed mailers' in-flight requests:
MAILER_CONCURRENCY loops × one provider request each), every acknowledged beat covered by a
stored session and the daily seconds exactly what the stored beats imply, every scheduled
slot run exactly once, no `sending` claim left, and the most the sink received in any 10 s
window against 10 × the quota. Then the mail job's time on 3 mailers against 1 (no quota).

    python bench/chaos.py --quick                 # 5,000 recipients, 100 beats/s, ≈3 min
    python bench/chaos.py                         # 50,000 recipients, 500 beats/s
    python bench/chaos.py --quick --mariadb mysql+pymysql://root@127.0.0.1:3306/test

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import heartbeat as hb  # noqa: E402
import mail as mb  # noqa: E402
import schedules as sb  # noqa: E402
from databases import server_databases  # noqa: E402
from smtp_sink import Sink  # noqa: E402

from common.appdb import AppDB  # noqa: E402
from common.bus import Bus  # noqa: E402
from common.db import make_engine  # noqa: E402
from common.mail.config_save import save_config  # noqa: E402
from common.mail.jobs import create_job  # noqa: E402
from common.mail.queue import dispatch_async  # noqa: E402
from common.mail.recipients import RecipientSpec  # noqa: E402
from common.mail.site import MailSite  # noqa: E402
from common.migrate import upgrade  # noqa: E402
from common.models.analytics import UsertimeDaily, UsertimeSession  # noqa: E402
from common.models.mail import CloudDeadChunk, CloudJob, CloudRecipient  # noqa: E402
from common.moodle import MoodleSource  # noqa: E402
from common.moodle.demo import seed_site  # noqa: E402
from common.moodle.tables import MoodleTables  # noqa: E402
from common.nats_server import EmbeddedNatsCluster, free_port  # noqa: E402
from services.mailer.providers.smtp import SmtpProvider  # noqa: E402
from services.mailer.ratelimit import burst_for  # noqa: E402
from tests.support import ServiceProcess  # noqa: E402

QUICK = {"n": 5_000, "quota": 150.0, "beats_per_s": 100, "users": 300, "slots": 3,
         "per_slot": 4, "slot_gap_s": 8, "scale_n": 3_000, "timeout_s": 240}  # fmt: skip
FULL = {"n": 50_000, "quota": 400.0, "beats_per_s": 500, "users": 3_000, "slots": 6,
        "per_slot": 10, "slot_gap_s": 15, "scale_n": 10_000, "timeout_s": 1_200}  # fmt: skip
SECRET = hb.SECRET  # the beat tokens are signed with the services' SECRET_KEY
MAILER_CONCURRENCY = 4
CHUNK = 250
RESTART_PAUSE_S = (2.0, 5.0)
BEAT_CONNECTIONS = 8
RELAY_LATENCY_S = 0.02
SCALE_CHUNK = 100  # the scale jobs in chunks enough for every loop of 3 mailers, many times


def progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# -- the Moodle site ---------------------------------------------------------------------------
def seed_moodle(url: str, users: int) -> list[tuple[int, int]]:
    """A small demo site (the schedules' reports read it) plus `users` bench learners actively
    enrolled in two of its courses; returns the (course, activity) pairs the beats name."""
    seed_site(url, users=60, courses=3, companies=1, days=2)
    t = MoodleTables()
    engine = make_engine(url)
    with engine.begin() as conn:
        enrols = conn.execute(
            select(t.enrol.c.id, t.enrol.c.courseid).where(t.enrol.c.status == 0)
            .order_by(t.enrol.c.courseid, t.enrol.c.id)
        ).all()  # fmt: skip
        first_enrol: dict[int, int] = {}
        for enrol_id, course in enrols:
            first_enrol.setdefault(int(course), int(enrol_id))
        pairs = []
        for course in sorted(first_enrol)[-2:]:
            cm = conn.scalar(select(func.min(t.course_modules.c.id))
                             .where(t.course_modules.c.course == course))  # fmt: skip
            pairs.append((course, int(cm)))
        ids = range(hb.FIRST_USER, hb.FIRST_USER + users)
        conn.execute(insert(t.user), [
            {"id": u, "username": f"chaos{u}", "auth": "manual", "confirmed": 1, "mnethostid": 1}
            for u in ids
        ])  # fmt: skip
        conn.execute(insert(t.user_enrolments), [
            {"enrolid": first_enrol[c], "userid": u, "status": 0, "timestart": 0, "timeend": 0}
            for u in ids for c, _ in pairs
        ])  # fmt: skip
    engine.dispose()
    return pairs


# -- processes -----------------------------------------------------------------------------------
class WebProcess:
    """The real web app under waitress, as bench/heartbeat.py serves it (clock from a header)."""

    name = "web"

    def __init__(self, env: dict[str, str], log_path: Path, port: int) -> None:
        self.port = port
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "heartbeat.py"), "--serve", str(port)],
            env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self._log.close()


class Stack:
    """The cluster, the databases and every service process of the chaos run."""

    def __init__(self, root: Path, app_url: str, moodle_url: str, sink_port: int,
                 size: dict) -> None:  # fmt: skip
        self.root = root
        self.app_url = app_url
        self.cluster = EmbeddedNatsCluster(root / "cluster", 3).start()
        self.url = self.cluster.url
        self.appdb = AppDB(app_url)
        self.sink_port = sink_port
        self.env = {**os.environ, "DATABASE_URL": app_url, "MOODLE_DATABASE_URL": moodle_url,
                    "NATS_URL": self.url, "NATS_REPLICAS": "3", "SECRET_KEY": SECRET,
                    "MANIREPORTS_INSTANCE": str(root / "instance"), "PYTHONPATH": str(REPO),
                    "MAIL_SMTP_ALLOW_PRIVATE_HOSTS": "true",
                    "BUS_ACK_WAIT_S": str(size["ack_wait_s"]),
                    "MAILER_CONCURRENCY": str(MAILER_CONCURRENCY),
                    "SCHEDULER_LEASE_TTL_S": "2", "TASK_INTERVALS": sb.QUIET_TASKS}  # fmt: skip
        self.services: dict[str, list[Any]] = {"web": [], "aggregator": [], "mailer": [],
                                               "scheduler": []}  # fmt: skip
        self.started = 0
        asyncio.run(self._ensure_streams())

    async def _ensure_streams(self) -> None:
        bus = await Bus.connect(self.url, name="chaos", replicas=3)
        try:
            await bus.ensure_streams()
        finally:
            await bus.close()

    def spawn(self, kind: str) -> Any:
        self.started += 1
        log = self.root / f"{kind}-{self.started}.log"
        if kind == "web":
            process: Any = WebProcess(self.env, log, free_port())
        else:
            process = ServiceProcess(kind, self.env, log)
        self.services[kind].append(process)
        return process

    def web_ports(self) -> list[int]:
        return [w.port for w in self.services["web"] if w.process.poll() is None]

    def health(self, kind: str) -> list[dict[str, Any]]:
        async def ask() -> list[dict[str, Any]]:
            bus = await Bus.connect(self.url, name="chaos")
            try:
                return await bus.gather(f"mr.health.{kind}", {}, wait_s=0.5)
            finally:
                await bus.close()

        try:
            return asyncio.run(ask())
        except Exception:  # noqa: BLE001 - a server of the cluster is down: ask again later
            return []

    def wait_healthy(self, kind: str, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if kind == "web":
                if all(_http_ok(port) for port in self.web_ports()):
                    return
            elif len(self.health(kind)) >= count:
                return
            time.sleep(0.3)
        raise SystemExit(f"{count} {kind} process(es) did not become healthy")

    def run_mailers(self, count: int) -> None:
        """Exactly `count` mailers running (the extra ones stopped, the missing started)."""
        while len(self.services["mailer"]) > count:
            process = self.services["mailer"].pop()
            process.process.terminate()
            process.process.wait(60)
            process.stop()
        while len(self.services["mailer"]) < count:
            self.spawn("mailer")
        self.wait_healthy("mailer", count)
        time.sleep(1)  # the stopped ones' health answers are gone

    def leading_scheduler(self) -> Any | None:
        pids = {str(r.get("instance", "")).rsplit(":", 1)[-1] for r in self.health("scheduler")
                if r.get("leader")}  # fmt: skip
        for process in self.services["scheduler"]:
            if str(process.process.pid) in pids and process.process.poll() is None:
                return process
        return None

    def configure_mail(self, rate: float) -> None:
        """The bulk jobs' company sends to the sink under `rate`/s; company 0 (the site
        admin's scheduled reports) to the same sink with no quota."""
        for company, quota in ((mb.COMPANY, rate), (0, 0.0)):
            values = {"provider": "smtp", "enabled": True, "sender_email": mb.SENDER,
                      "chunk_size": CHUNK, "rate_per_s": quota, "offloaded_events": [],
                      "provider_config": {"host": "127.0.0.1", "port": self.sink_port,
                                          "security": "none"}}  # fmt: skip
            with self.appdb.transaction() as session:
                save_config(session, company, values, secret_key=SECRET, actor_id=None,
                            actor_is_site_admin=True,
                            site=MailSite(allow_private_smtp_hosts=True))  # fmt: skip

    def create_job(self, run: str, n: int, chunk_size: int = CHUNK) -> int:
        recipients = (RecipientSpec(email=mb.address(run, i), data=mb.recipient_data(i))
                      for i in range(n))  # fmt: skip
        with self.appdb.transaction() as session:
            job = create_job(session, company_id=mb.COMPANY, job_type="bulk",
                             recipients=recipients, source="api", chunk_size=chunk_size,
                             subject=mb.SUBJECT, html=mb.HTML)  # fmt: skip
            return int(job.id)

    def dispatch(self, job_id: int) -> None:
        async def publish() -> None:
            bus = await Bus.connect(self.url, name="chaos")
            try:
                assert await dispatch_async(bus.publish, job_id)
            finally:
                await bus.close()

        asyncio.run(publish())

    def job_status(self, job_id: int) -> str:
        with self.appdb.transaction() as session:
            return str(session.scalar(select(CloudJob.status).where(CloudJob.id == job_id)))

    def wait_job(self, job_id: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.job_status(job_id) in ("completed", "partially_failed", "failed"):
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        for processes in self.services.values():
            for process in processes:
                process.stop()
        self.cluster.stop()
        self.appdb.dispose()


def _http_ok(port: int) -> bool:
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


# -- heartbeats at a fixed rate across the web processes -----------------------------------------
class BeatLoad:
    """Beats at `rate`/s over a few keep-alive connections, spread over the web processes; a
    connection whose server died moves to another. A beat answered 204 is acknowledged; one
    with no answer (the server died mid-request) or an error may or may not have been stored."""

    def __init__(self, plan: hb.LoadPlan, stack: Stack, rate: int) -> None:
        self.plan, self.stack, self.rate = plan, stack, rate
        self.acked: list[tuple[int, int, int, int]] = []
        self.uncertain: list[tuple[int, int, int, int]] = []
        # When and through which web process each beat was acknowledged: for a lost one.
        self.acked_via: dict[tuple[int, int, int, int], tuple[float, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BeatLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        loop = hb.uvloop.new_event_loop()
        try:
            loop.run_until_complete(self._connections())
        finally:
            loop.close()

    async def _connections(self) -> None:
        await asyncio.gather(*(self._connection(i) for i in range(BEAT_CONNECTIONS)))

    async def _connection(self, index: int) -> None:
        interval = BEAT_CONNECTIONS / self.rate
        next_at = time.monotonic() + index * interval / BEAT_CONNECTIONS
        reader = writer = None
        turn = index
        port = 0
        while not self._stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            key, t = self.plan.next_beat()
            beat = (*key, t)
            try:
                if writer is None:
                    ports = self.stack.web_ports()
                    turn += 1
                    port = ports[turn % len(ports)]
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(self.plan.request("/tracking/beat", key, t))
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = hb._content_length(head)
                if length:
                    await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ZeroDivisionError):
                self.uncertain.append(beat)
                writer = None
                continue
            if int(head[9:12]) == 204:
                self.acked.append(beat)
                self.acked_via[beat] = (time.time(), port)
            else:
                self.uncertain.append(beat)
            if b"connection: close" in head.lower():
                writer.close()
                writer = None


def beat_figures(
    appdb: AppDB, acked: list, uncertain: list, acked_via: dict | None = None
) -> dict[str, Any]:
    """Acknowledged beats no stored session covers, and whether the bench users' daily
    seconds are exactly what the stored beats imply (the acknowledged ones, plus those with
    no answer that a stored session shows were stored after all)."""
    users = {beat[0] for beat in acked + uncertain}
    spans: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    with appdb.transaction() as session:
        s = UsertimeSession
        for row in session.execute(select(s.userid, s.courseid, s.cmid, s.sessionstart,
                                          s.lastbeat)):  # fmt: skip
            spans.setdefault((row.userid, row.courseid, row.cmid), []).append(
                (int(row.sessionstart.timestamp()), int(row.lastbeat.timestamp()))
            )
        d = UsertimeDaily
        daily = {(r.userid, r.courseid, r.date): r.seconds
                 for r in session.execute(select(d.userid, d.courseid, d.date, d.seconds))
                 if r.userid in users}  # fmt: skip

    def covered(beat: tuple[int, int, int, int]) -> bool:
        u, c, cm, t = beat
        return any(first <= t <= last for first, last in spans.get((u, c, cm), ()))

    stored = acked + [beat for beat in uncertain if covered(beat)]
    expected = hb.expected_daily(stored)
    differing = {k for k in expected.keys() | daily.keys() if expected.get(k) != daily.get(k)}
    return {
        "acked": len(acked),
        "unanswered_or_error": len(uncertain),
        "acked_not_reflected": sum(not covered(beat) for beat in acked),
        # (user, course, cm, beat time, acknowledged at (Unix time), web port) of a few
        "acked_not_reflected_sample": [
            [*beat, *(acked_via or {}).get(beat, (None, None))]
            for beat in [b for b in acked if not covered(b)][:5]
        ],
        "daily_seconds_exact": not differing,
        "daily_rows_differing": len(differing),
        "daily_seconds_expected": sum(expected.values()),
        "daily_seconds_stored": sum(daily.values()),
        "differing_sample": [
            [str(x) for x in k] + [expected.get(k), daily.get(k)] for k in sorted(differing)[:5]
        ],  # fmt: skip
    }


# -- one phase of the workload -------------------------------------------------------------------
@dataclass
class Kill:
    what: str
    at_s: float
    restarted_after_s: float
    detail: str


def schedule_slots(stack: Stack, source: MoodleSource, phase: str, size: dict,
                   start: datetime) -> list[tuple[list[int], datetime]]:  # fmt: skip
    slots = []
    for k in range(size["slots"]):
        ids = sb.create_schedules(stack.appdb, source, size["per_slot"], f"{phase}{k}")
        due = (start + timedelta(seconds=5 + k * size["slot_gap_s"])).replace(microsecond=0)
        sb.make_due(stack.appdb, ids, due)
        slots.append((ids, due))
    return slots


def run_phase(stack: Stack, source: MoodleSource, plan: hb.LoadPlan, size: dict, phase: str,
              chaos: bool, rng: random.Random) -> dict[str, Any]:  # fmt: skip
    n = size["n"]
    job_id = stack.create_job(phase, n)
    slots = schedule_slots(stack, source, phase, size, datetime.now(UTC))
    expected_s = n / size["quota"]
    beats = BeatLoad(plan, stack, size["beats_per_s"]).start()
    progress(f"{phase}: job {job_id} of {n:,} recipients, {size['beats_per_s']} beats/s, "
             f"{size['slots']}×{size['per_slot']} schedules due")  # fmt: skip
    started, started_at = time.perf_counter(), time.time()
    stack.dispatch(job_id)
    kills: list[Kill] = []
    killer = None
    if chaos:
        killer = threading.Thread(target=lambda: kills.extend(
            chaos_monkey(stack, rng, started, expected_s)), daemon=True)  # fmt: skip
        killer.start()
    finished = stack.wait_job(job_id, size["timeout_s"])
    elapsed = time.perf_counter() - started
    if killer is not None:
        killer.join()  # every victim is running again before the figures are taken
    beats.stop()
    progress(f"{phase}: job {'done' if finished else 'NOT done'} after {elapsed:.1f} s; "
             f"{len(beats.acked)} beats acknowledged")  # fmt: skip
    slot_results = wait_slots(stack, slots, size["timeout_s"])
    return {"job_id": job_id, "finished": finished, "elapsed_s": elapsed, "kills": kills,
            "started_at": started_at,
            "beats": beats, "slots": slot_results}  # fmt: skip


def chaos_monkey(stack: Stack, rng: random.Random, started: float, expected_s: float) -> list[Kill]:
    """The five kills in random order at random moments within the job's expected time, each
    victim started again after a pause, one at a time."""
    victims = ["mailer", "aggregator", "leading scheduler", "web", "nats-server"]
    rng.shuffle(victims)
    window = max(expected_s * 0.8, 10.0)
    moments = sorted(rng.uniform(0.05, 1.0) * window for _ in victims)
    kills = []
    for what, moment in zip(victims, moments, strict=True):
        time.sleep(max(0.0, started + moment - time.perf_counter()))
        at = time.perf_counter() - started
        detail = kill(stack, what, rng)
        pause = rng.uniform(*RESTART_PAUSE_S)
        time.sleep(pause)
        restart(stack, what)
        progress(f"killed {what} ({detail}) at {at:.1f} s, restarted after {pause:.1f} s")
        kills.append(Kill(what, round(at, 1), round(pause, 1), detail))
    return kills


def kill(stack: Stack, what: str, rng: random.Random) -> str:
    if what == "nats-server":
        server = rng.choice([s for s in stack.cluster.servers if s.alive()])
        server.kill()
        return server.cluster.server_name if server.cluster else server.url
    if what == "leading scheduler":
        victim = stack.leading_scheduler()
        if victim is None:  # no leader answered: take either
            victim = rng.choice(stack.services["scheduler"])
            what = "scheduler"
    else:
        victim = rng.choice([p for p in stack.services[what] if p.process.poll() is None])
    pid = victim.process.pid
    port = f", port {victim.port}" if what == "web" else ""
    victim.kill()
    stack.services["scheduler" if "scheduler" in what else what].remove(victim)
    victim.stop()
    return f"pid {pid}{port}, at {time.time():.2f}"


def restart(stack: Stack, what: str) -> None:
    if what == "nats-server":
        stack.cluster.restart_dead()
        return
    kind = "scheduler" if "scheduler" in what else what
    stack.spawn(kind)


def wait_slots(stack: Stack, slots: list[tuple[list[int], datetime]], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    totals = Counter[str]()
    for ids, due in slots:
        names = sb.msg_ids(ids, due)
        while sb.processed_count(stack.appdb, names) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.3)
        figures = sb.figures(stack.appdb, ids, due)
        totals["expected"] += len(ids)
        totals["fired_exactly_once"] += len(ids) - figures["schedules_not_exactly_one_job"]
        totals["slots_with_more_than_one_run"] += figures["schedules_with_more_than_one_run"]
        totals["slots_not_exactly_one_job"] += figures["schedules_not_exactly_one_job"]
        totals["duplicate_jobs"] += figures["duplicate_jobs"]
    return dict(totals)


def mail_figures(stack: Stack, sink: Sink, phase: str, job_id: int) -> dict[str, Any]:
    received = Counter(rcpt for _, rcpt in sink.arrivals(f"{phase}.learner"))
    with stack.appdb.transaction() as session:
        r = CloudRecipient
        rows = session.execute(select(r.email, r.status, r.last_error, r.attempts)
                               .where(r.jobid == job_id)).all()  # fmt: skip
        status = {row.email.lower(): (row.status, row.last_error) for row in rows}
        attempts = {row.email.lower(): int(row.attempts or 0) for row in rows}
        dead_chunks = session.scalar(select(func.count()).select_from(CloudDeadChunk)
                                     .where(CloudDeadChunk.jobid == job_id))  # fmt: skip
    dead = [e for e, (s, _) in status.items() if s == "failed"]
    return {
        "recipients": len(status),
        "sent_once": sum(1 for e in status if received[e] == 1),
        "dead_lettered": len(dead),
        "dead_lettered_without_reason": sum(1 for e in dead if not status[e][1]),
        "dead_chunks": int(dead_chunks or 0),
        "lost": sum(1 for e, (s, _) in status.items() if received[e] == 0 and s != "failed"),
        "duplicates": sum(c - 1 for c in received.values() if c > 1),
        "recipients_duplicated": sum(1 for c in received.values() if c > 1),
        "stuck_sending_claims": sum(1 for s, _ in status.values() if s == "sending"),
        # A duplicate whose row was claimed more than once: a lease ran out (mailer killed,
        # or a claim held longer than the ack wait) and another mailer sent it again.
        "duplicated_and_claimed_again": sum(
            1 for e, c in received.items() if c > 1 and attempts.get(e, 0) > 1
        ),  # fmt: skip
        "statuses": dict(Counter(s for s, _ in status.values())),
    }


def quota_figures(sink: Sink, phase: str, quota: float, started_at: float) -> dict[str, Any]:
    """The most the sink received in any 10 s window, where that window began (seconds after
    the job's dispatch) and its arrivals second by second (a burst, or a steady overrun)."""
    times = sorted(t for t, _ in sink.arrivals(f"{phase}.learner"))
    most = mb.max_window(times)
    start = next((t for i, t in enumerate(times)
                  if bisect.bisect_left(times, t + 10.0) - i == most), started_at)  # fmt: skip
    per_second = Counter(int(t - start) for t in times if start <= t < start + 10.0)
    return {"q_per_s": quota, "max_in_10s": most, "limit_10s": round(quota * 10),
            "max_excess_pct": round(100 * (most / (quota * 10) - 1), 2),
            "max_window_at_s": round(start - started_at, 1),
            "max_window_per_s": [per_second[i] for i in range(10)]}  # fmt: skip


def in_flight_bound(quota: float, mailer_kills: int) -> int:
    """What a killed mailer can have had inside provider calls: one request per chunk loop,
    each of at most the sub-batch size the quota allows."""
    per_request = min(SmtpProvider.max_batch_size, burst_for(quota), CHUNK)
    return mailer_kills * MAILER_CONCURRENCY * per_request


def scale_phase(stack: Stack, sink: Sink, size: dict) -> dict[str, Any]:
    """The same job on 3 mailers and on 1, no quota, no faults: once against the sink as it is
    (CPU-bound: the mailers share this machine's cores with the sink, the cluster and the
    databases) and once with each message answered after RELAY_LATENCY_S, as a relay or a
    provider's API on the network answers (the wait more mailers overlap)."""
    stack.configure_mail(rate=0)
    figures: dict[str, Any] = {"n": size["scale_n"]}
    for latency in (0.0, RELAY_LATENCY_S):
        sink.set_latency(latency)
        times = {}
        for mailers in (3, 1):
            stack.run_mailers(mailers)
            job_id = stack.create_job(f"scale{mailers}x{latency:g}", size["scale_n"], SCALE_CHUNK)
            started = time.perf_counter()
            stack.dispatch(job_id)
            done = stack.wait_job(job_id, size["timeout_s"])
            times[mailers] = time.perf_counter() - started if done else None
            progress(f"{size['scale_n']:,} recipients, {latency * 1000:g} ms a message, on "
                     f"{mailers} mailer(s): {times[mailers]}")  # fmt: skip
        three, one = times[3], times[1]
        figures[f"latency_{latency * 1000:g}ms"] = {
            "mailers_3_s": three and round(three, 2), "mailers_1_s": one and round(one, 2),
            "speedup_3_vs_1": round(one / three, 2) if one and three else None,
        }  # fmt: skip
    sink.set_latency(0.0)
    return figures


def run(root: Path, app_url: str, moodle_url: str, size: dict, seed: int) -> dict[str, Any]:
    progress("seeding the Moodle site and the app DB")
    pairs = seed_moodle(moodle_url, size["users"])
    upgrade(app_url)
    plan = hb.LoadPlan(size["users"])
    plan.keys = [(u, c, cm) for u in plan.tokens for c, cm in ((pairs[0][0], 0), *pairs)]
    plan.next_time = {key: hb.EPOCH + (i * 37) % 3600 for i, key in enumerate(plan.keys)}
    sink = Sink()
    source = MoodleSource(moodle_url)
    stack = None
    rng = random.Random(seed)
    try:
        stack = Stack(root, app_url, moodle_url, sink.port, size)
        stack.configure_mail(rate=size["quota"])
        progress("starting 2 web, 2 aggregators, 3 mailers, 2 schedulers on a 3-node cluster")
        for kind, count in (("web", 2), ("aggregator", 2), ("mailer", 3), ("scheduler", 2)):
            for _ in range(count):
                stack.spawn(kind)
        for kind, count in (("web", 2), ("aggregator", 2), ("mailer", 3), ("scheduler", 2)):
            stack.wait_healthy(kind, count)
        phases = {}
        for phase, chaos in (("free", False), ("chaos", True)):
            outcome = run_phase(stack, source, plan, size, phase, chaos, rng)
            phases[phase] = outcome
        progress("draining the heartbeat stream")
        hb.drain(stack.url)
        result = {}
        for phase, outcome in phases.items():
            mail = mail_figures(stack, sink, phase, outcome["job_id"])
            kills = outcome["kills"]
            mailer_kills = sum(1 for k in kills if k.what == "mailer")
            mail["duplicates_bound"] = in_flight_bound(size["quota"], mailer_kills)
            result[phase] = {
                "job_finished": outcome["finished"],
                "elapsed_s": round(outcome["elapsed_s"], 2),
                "recipients_per_s": round(size["n"] / outcome["elapsed_s"], 1),
                "mail": mail,
                "quota": quota_figures(sink, phase, size["quota"], outcome["started_at"]),
                "beats": {"rate_per_s": size["beats_per_s"], "acked": len(outcome["beats"].acked),
                          "unanswered_or_error": len(outcome["beats"].uncertain),
                          # below the rate asked for when the web tier could not keep up
                          "acked_per_s": round(len(outcome["beats"].acked)
                                               / outcome["elapsed_s"], 1)},
                "slots": outcome["slots"],
                "kills": [vars(k) for k in kills],
            }  # fmt: skip
        # One check over both phases: they share the bench users, so the stored daily seconds
        # are what the two phases' beats together imply.
        result["beats"] = beat_figures(
            stack.appdb,
            [b for o in phases.values() for b in o["beats"].acked],
            [b for o in phases.values() for b in o["beats"].uncertain],
            {k: v for o in phases.values() for k, v in o["beats"].acked_via.items()},
        )
        result["scale"] = scale_phase(stack, sink, size)
        return result
    finally:
        if stack is not None:
            stack.close()
        source.dispose()
        sink.stop()


def summary(result: dict[str, Any], size: dict, backend: str, seed: int) -> dict[str, Any]:
    free, chaos = result["free"], result["chaos"]
    return {
        "bench": "chaos",
        "backend": backend,
        "seed": seed,
        "size": size,
        "throughput_free_per_s": free["recipients_per_s"],
        "throughput_chaos_per_s": chaos["recipients_per_s"],
        "throughput_ratio": round(chaos["recipients_per_s"] / free["recipients_per_s"], 3),
        "lost": free["mail"]["lost"] + chaos["mail"]["lost"],
        "duplicates": chaos["mail"]["duplicates"],
        "duplicates_bound": chaos["mail"]["duplicates_bound"],
        "stuck_sending_claims": free["mail"]["stuck_sending_claims"]
        + chaos["mail"]["stuck_sending_claims"],
        "max_quota_excess_pct": max(
            free["quota"]["max_excess_pct"], chaos["quota"]["max_excess_pct"]
        ),  # fmt: skip
        "beats_acked": result["beats"]["acked"],
        "beats_acked_not_reflected": result["beats"]["acked_not_reflected"],
        "daily_seconds_exact": result["beats"]["daily_seconds_exact"],
        "beats": result["beats"],
        "slots_expected": free["slots"]["expected"] + chaos["slots"]["expected"],
        "slots_fired_exactly_once": free["slots"]["fired_exactly_once"]
        + chaos["slots"]["fired_exactly_once"],
        "slot_duplicates": free["slots"]["duplicate_jobs"]
        + chaos["slots"]["duplicate_jobs"]
        + free["slots"]["slots_with_more_than_one_run"]
        + chaos["slots"]["slots_with_more_than_one_run"],
        "kills": chaos["kills"],
        "mail_3_vs_1": result["scale"],
        "phases": {"free": free, "chaos": chaos},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mariadb", metavar="URL",
                        help="app (and Moodle) DB on this MariaDB server: mr_chaos_bench and "
                             "mr_chaos_bench_app, created and dropped")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="the kills' random seed")
    parser.add_argument("--ack-wait", type=int, default=60,
                        help="BUS_ACK_WAIT_S for the services (60 as shipped): a killed "
                             "mailer's `sending` claims are taken over after it")  # fmt: skip
    args = parser.parse_args()
    size = {**(QUICK if args.quick else FULL), "ack_wait_s": args.ack_wait}
    # Stopped from outside (a test's timeout): unwind, so every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    # Short-lived connections of this process and failovers say so at WARNING: expected here.
    logging.getLogger("common.bus").setLevel(logging.ERROR)
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="manireports-chaos-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        if args.mariadb:
            moodle_url, app_url = stack.enter_context(
                server_databases(args.mariadb, "mr_chaos_bench"))  # fmt: skip
        else:
            moodle_url, app_url = f"sqlite:///{root / 'moodle.db'}", f"sqlite:///{root / 'app.db'}"
        result = run(root, app_url, moodle_url, size, seed)
        backend = make_url(app_url).get_backend_name()
    print(json.dumps(summary(result, size, backend, seed)))


if __name__ == "__main__":
    main()
