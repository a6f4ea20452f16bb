"""Benchmark: heartbeat ingestion through the web tier, against the same stack answering 204.

Starts a nats-server, the web tier (waitress, the app as `manireports web` builds it) and an
aggregator, each its own process. A load generator on loopback then posts beats for many
users and courses over concurrent connections for a fixed time; in the same run and on the
same server it posts to a route that only answers 204 (the baseline: the web stack with no
work). Afterwards it waits for the aggregator to drain the stream and checks every beat that
got a 204 against the app DB: a beat is lost if no stored session covers its time, and the
daily seconds must equal what the sent beats imply (computed here independently).

Beat times come from an `X-Bench-Time` header the bench server's clock reads, so the figures
the beats imply are known exactly; everything else is the production path, including the
enrolment check: the Moodle DB enrols every bench user in both courses, whose activities the
beats name.

    python bench/heartbeat.py --quick        # ≈1 minute
    python bench/heartbeat.py                # 60 s per phase

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.appdb import AppDB  # noqa: E402
from common.bus import Bus  # noqa: E402
from common.db import make_engine  # noqa: E402
from common.migrate import upgrade  # noqa: E402
from common.models.analytics import UsertimeDaily, UsertimeSession  # noqa: E402
from common.moodle.tables import MoodleTables, recreate_site_tables  # noqa: E402
from common.nats_server import EmbeddedNatsServer, free_port  # noqa: E402
from web.tracking.tokens import HeartbeatTokens  # noqa: E402

QUICK = {"seconds": 15, "users": 2_000, "connections": 16}
FULL = {"seconds": 60, "users": 10_000, "connections": 16}
SECRET = "bench-secret-" + "k" * 40
GAP = 120  # HEARTBEAT_TIMEOUT default
EPOCH = 1_795_000_000
WEB_THREADS = 8  # `manireports web` default
COURSE_MODULES = {2: (21,), 3: (31,)}  # the courses and activities the beats are for
FIRST_USER = 1000


def serve(port: int) -> None:
    """The bench's web process: the real app, plus a bare-204 route and a pinned clock."""
    import waitress
    from flask import Response, request

    from web.app import create_app, csrf

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = create_app()

    @app.post("/bench/noop")
    @csrf.exempt
    def noop():  # type: ignore[no-untyped-def]
        return Response(status=204)

    app.extensions["manireports"].clock = lambda: float(request.headers["X-Bench-Time"])
    waitress.serve(app, host="127.0.0.1", port=port, threads=WEB_THREADS, _quiet=True)


class LoadPlan:
    """Which user, course and activity each beat is for, and its (virtual) time."""

    def __init__(self, users: int):
        tokens = HeartbeatTokens(SECRET, ttl_s=7 * 86400)
        self.tokens = {u: tokens.issue(u, EPOCH)[0] for u in range(FIRST_USER, FIRST_USER + users)}
        self.keys = [(u, c, cm) for u in self.tokens for c, cm in ((2, 0), (2, 21), (3, 31))]
        self.next_time = {key: EPOCH + (i * 37) % 3600 for i, key in enumerate(self.keys)}
        self.count = 0

    def next_beat(self) -> tuple[tuple[int, int, int], int]:
        key = self.keys[self.count % len(self.keys)]
        self.count += 1
        t = self.next_time[key]
        # Mostly 25 s apart, every 7th a pause longer than the timeout: several sessions.
        self.next_time[key] = t + (600 if self.count % 7 == 0 else 25)
        return key, t

    def request(self, path: str, key: tuple[int, int, int], t: int) -> bytes:
        body = json.dumps({"token": self.tokens[key[0]], "course": key[1], "cm": key[2],
                           "id": uuid.uuid4().hex}).encode()  # fmt: skip
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            f"X-Bench-Time: {t}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


async def _client(port, plan, path, deadline, latencies, accepted, failures):  # type: ignore[no-untyped-def]
    reader = writer = None
    while time.perf_counter() < deadline:
        key, t = plan.next_beat()
        data = plan.request(path, key, t)
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            failures.append(key)
            writer = None
            continue
        latencies.append(time.perf_counter() - started)
        status = int(head[9:12])
        if status == 204:
            accepted.append((*key, t))
        else:
            failures.append(status)
        if b"Connection: close" in head:  # waitress closes after every 204
            writer.close()
            writer = None


def run_load(port: int, plan: LoadPlan, path: str, seconds: float, connections: int) -> dict:
    latencies: list[float] = []
    accepted: list[tuple[int, int, int, int]] = []
    failures: list[object] = []

    async def go() -> float:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(_client(port, plan, path, deadline, latencies, accepted, failures)
              for _ in range(connections))
        )  # fmt: skip
        return time.perf_counter() - started

    elapsed = asyncio.run(go())
    latencies.sort()
    return {
        "per_s": len(latencies) / elapsed,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000 if latencies else 0.0,
        "accepted": accepted,
        "failures": len(failures),
    }


def seed_moodle(url: str, users: int) -> None:
    """The Moodle side the enrolment check reads: the bench users, each actively enrolled in
    both courses, and the courses' activities."""
    tables = MoodleTables()
    engine = make_engine(url)
    user_ids = range(FIRST_USER, FIRST_USER + users)
    with engine.begin() as conn:
        recreate_site_tables(conn, iomad=False)
        conn.execute(tables.course.insert(), [
            {"id": c, "category": 1, "fullname": f"Course {c}", "shortname": f"c{c}"}
            for c in COURSE_MODULES
        ])  # fmt: skip
        conn.execute(tables.course_modules.insert(), [
            {"id": cm, "course": c, "module": 1, "instance": cm}
            for c, cms in COURSE_MODULES.items() for cm in cms
        ])  # fmt: skip
        conn.execute(tables.enrol.insert(), [
            {"id": c, "enrol": "manual", "courseid": c, "status": 0} for c in COURSE_MODULES
        ])  # fmt: skip
        conn.execute(tables.user.insert(), [
            {"id": u, "username": f"bench{u}", "auth": "manual", "confirmed": 1, "mnethostid": 1}
            for u in user_ids
        ])  # fmt: skip
        conn.execute(tables.user_enrolments.insert(), [
            {"enrolid": c, "userid": u, "status": 0, "timestart": 0, "timeend": 0}
            for u in user_ids for c in COURSE_MODULES
        ])  # fmt: skip
    engine.dispose()


def drain(nats_url: str, timeout_s: float = 300) -> None:
    async def pending() -> int:
        bus = await Bus.connect(nats_url, name="bench")
        info = await bus.js.consumer_info("HEARTBEATS", "aggregator-heartbeats")
        await bus.close()
        return int(info.num_pending + info.num_ack_pending)

    deadline = time.monotonic() + timeout_s
    while asyncio.run(pending()):
        if time.monotonic() > deadline:
            raise SystemExit("the aggregator did not drain the heartbeat stream")
        time.sleep(0.5)


def expected_daily(beats: list[tuple[int, int, int, int]]) -> dict:
    """What the beats imply, computed without the project's code: per (user, course), beats
    closer than the timeout are one stretch of time, split at UTC midnight."""
    by_course: dict[tuple[int, int], list[int]] = defaultdict(list)
    for user, course, _, t in beats:
        by_course[(user, course)].append(t)
    daily: dict[tuple[int, int, object], int] = defaultdict(int)
    for (user, course), times in by_course.items():
        times = sorted(set(times))
        first = last = times[0]
        for t in [*times[1:], None]:
            if t is not None and t - last <= GAP:
                last = t
                continue
            moment = first
            while True:
                midnight = (moment // 86400 + 1) * 86400
                day = datetime.fromtimestamp(moment, UTC).date()
                daily[(user, course, day)] += min(last, midnight) - moment
                if last <= midnight:
                    break
                moment = midnight
            if t is not None:
                first = last = t
    return dict(daily)


def verify(appdb: AppDB, beats: list[tuple[int, int, int, int]]) -> tuple[int, bool]:
    """(beats no stored session covers, whether the daily seconds are exactly as implied)."""
    spans: dict[tuple[int, int, int], list[tuple[int, int]]] = defaultdict(list)
    with appdb.transaction() as session:
        s = UsertimeSession
        for row in session.execute(select(s.userid, s.courseid, s.cmid, s.sessionstart,
                                          s.lastbeat)):  # fmt: skip
            spans[(row.userid, row.courseid, row.cmid)].append(
                (int(row.sessionstart.timestamp()), int(row.lastbeat.timestamp()))
            )
        d = UsertimeDaily
        daily = {
            (r.userid, r.courseid, r.date): r.seconds
            for r in session.execute(select(d.userid, d.courseid, d.date, d.seconds))
        }
    lost = sum(
        not any(first <= t <= last for first, last in spans.get((u, c, cm), ()))
        for u, c, cm, t in beats
    )
    return lost, daily == expected_daily(beats)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU time of each process so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def wait_http(base: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/healthz", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit("the web tier did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        figures = run(Path(scratch), size)
    print(json.dumps(figures))


def run(scratch: Path, size: dict[str, int]) -> dict[str, object]:
    nats = EmbeddedNatsServer(scratch / "nats").start()
    db_url = f"sqlite:///{scratch / 'app.db'}"
    upgrade(db_url)
    moodle_url = f"sqlite:///{scratch / 'moodle.db'}"
    seed_moodle(moodle_url, size["users"])
    env = {**os.environ, "MANIREPORTS_INSTANCE": str(scratch / "instance"), "DATABASE_URL": db_url,
           "MOODLE_DATABASE_URL": moodle_url, "NATS_URL": nats.url,
           "SECRET_KEY": SECRET, "PYTHONPATH": str(REPO)}  # fmt: skip
    port = free_port()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env, cwd=REPO),
        subprocess.Popen(
            [sys.executable, "-m", "services.aggregator"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),  # fmt: skip
    ]
    appdb = AppDB(db_url)
    try:
        wait_http(f"http://127.0.0.1:{port}")
        plan = LoadPlan(size["users"])
        seconds, connections = size["seconds"], size["connections"]
        print(f"warming up; then {seconds} s per phase, {connections} connections", flush=True)
        warm = run_load(port, plan, "/tracking/beat", 2, connections)
        pids = {"web": procs[0].pid, "aggregator": procs[1].pid, "nats": nats.process.pid}
        before = cpu_seconds(pids)
        baseline = run_load(port, plan, "/bench/noop", seconds, connections)
        print(f"baseline (bare 204): {baseline['per_s']:.0f}/s", flush=True)
        during = cpu_seconds(pids)
        project = run_load(port, plan, "/tracking/beat", seconds, connections)
        after = cpu_seconds(pids)
        print(f"heartbeats: {project['per_s']:.0f}/s; draining the aggregator", flush=True)
        drained_at = time.perf_counter()
        drain(nats.url)
        drain_s = time.perf_counter() - drained_at
        sent = warm["accepted"] + project["accepted"]
        lost, daily_exact = verify(appdb, sent)
    finally:
        appdb.dispose()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        nats.stop()
    return {
        "bench": "heartbeat",
        "seconds": seconds,
        "connections": connections,
        "beats": len(project["accepted"]),
        "beats_per_s": round(project["per_s"]),
        "p99_ms": round(project["p99_ms"], 1),
        "refused": project["failures"],
        "lost": lost,
        "daily_exact": daily_exact,
        "drain_after_run_s": round(drain_s, 1),
        "baseline_per_s": round(baseline["per_s"]),
        "baseline_p99_ms": round(baseline["p99_ms"], 1),
        # CPU seconds each process used in each phase (2 cores: 2 x seconds available).
        "cpu_s_baseline": {k: round(during[k] - before[k], 1) for k in pids},
        "cpu_s_heartbeats": {k: round(after[k] - during[k], 1) for k in pids},
        "ratio": round(project["per_s"] / baseline["per_s"], 2),
    }


if __name__ == "__main__":
    main()
