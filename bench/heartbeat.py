"""Benchmark: heartbeat ingestion through the web tier and the lean path, against the Flask
stack answering a bare 204.

Starts a nats-server, the web tier (waitress, the app as `manireports web` builds it), the
lean heartbeat endpoint (`manireports beat`: the ASGI app under uvicorn, one process) and an
aggregator, each its own process. A load generator on loopback (uvloop, pre-built requests,
keep-alive connections where the server keeps them) then posts for a fixed time per phase:
to a Flask route that only answers 204 (the baseline: the web stack with no work), beats to
the Flask route, and beats to the lean path. Afterwards it waits for the aggregator to drain
the stream and checks every beat that got a 204 against the app DB: a beat is lost if no
stored session covers its time, and the daily seconds must equal what the sent beats imply
(computed here independently). Issue 15 asks `lean_beats_per_s / flask_bare_204_per_s` ≥ 2
with the lean p99 under 50 ms and nothing lost.

Beat times come from an `X-Bench-Time` header the bench server's clock reads, so the figures
the beats imply are known exactly; everything else is the production path, including the
enrolment check: the Moodle DB enrols every bench user in both courses, whose activities the
beats name.

    python bench/heartbeat.py --quick        # ≈1.5 minutes
    python bench/heartbeat.py                # 60 s per phase

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import requests
import uvloop
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
# Requests are built before each phase (so the generator spends its time sending): enough
# for this rate, far above what one process answers here.
MAX_RATE = {"flask": 6_000, "lean": 25_000}
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


def serve_lean(port: int) -> None:
    """The bench's lean process: the app as `manireports beat` serves it, with the clock
    pinned from the same header."""
    import uvicorn

    from common.settings import load_settings
    from web.tracking.beat_app import UVICORN_OPTIONS, BeatApp

    class BenchBeatApp(BeatApp):
        def now(self, headers: dict[bytes, bytes]) -> float:
            return float(headers[b"x-bench-time"])

    app = BenchBeatApp(load_settings())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **UVICORN_OPTIONS)


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

    def build(self, path: str, count: int) -> list[tuple[tuple[int, int, int, int], bytes]]:
        """`count` requests to `path`, each with the beat it carries."""
        built = []
        for _ in range(count):
            key, t = self.next_beat()
            built.append(((*key, t), self.request(path, key, t)))
        return built


async def _client(port, queue, deadline, latencies, accepted, failures):  # type: ignore[no-untyped-def]
    """One connection, one request in flight (as a reverse proxy's upstream connection);
    reconnects when the server closes (waitress closes after every 204)."""
    reader = writer = None
    while time.perf_counter() < deadline and queue:
        beat, data = queue.pop()
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(head)
            if length:
                await reader.readexactly(length)
        except (ConnectionError, asyncio.IncompleteReadError):
            failures.append(beat)
            writer = None
            continue
        latencies.append(time.perf_counter() - started)
        status = int(head[9:12])
        if status == 204:
            accepted.append(beat)
        else:
            failures.append(status)
        if b"Connection: close" in head or b"connection: close" in head:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line[15:])
    return 0


def run_load(port: int, plan: LoadPlan, path: str, seconds: float, connections: int,
             max_rate: int) -> dict:  # fmt: skip
    queue = plan.build(path, int(seconds * max_rate))
    queue.reverse()  # popped from the end: in plan order
    latencies: list[float] = []
    accepted: list[tuple[int, int, int, int]] = []
    failures: list[object] = []

    async def go() -> float:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(_client(port, queue, deadline, latencies, accepted, failures)
              for _ in range(connections))
        )  # fmt: skip
        return time.perf_counter() - started

    cpu_before = _own_cpu_s()
    loop = uvloop.new_event_loop()
    try:
        elapsed = loop.run_until_complete(go())
    finally:
        loop.close()
    latencies.sort()
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "accepted": accepted,
        "failures": len(failures),
        "ran_out": not queue,  # more requests were answered than were built: raise MAX_RATE
        "generator_cpu_s": _own_cpu_s() - cpu_before,
        "elapsed_s": elapsed,
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[int(q * (len(sorted_values) - 1))] if sorted_values else 0.0


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


def drain(nats_url: str, timeout_s: float = 600) -> None:
    # The bench's own short connections say "disconnected" as each closes: not news here.
    logging.getLogger("common.bus").setLevel(logging.ERROR)

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
    # A beat is answered once its group is stored (a few ms): at thousands of beats a second
    # a site has dozens of beats in flight at once, which the lean path serves concurrently.
    parser.add_argument("--lean-connections", type=int, default=64,
                        help="concurrent connections to the lean path")  # fmt: skip
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-lean", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.serve_lean:
        serve_lean(args.serve_lean)
        return
    size = {**(QUICK if args.quick else FULL), "lean_connections": args.lean_connections}
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
    port, lean_port = free_port(), free_port()
    quiet = {"env": env, "cwd": REPO, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = {
        "web": subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)], env=env, cwd=REPO
        ),  # fmt: skip
        "lean": subprocess.Popen(
            [sys.executable, __file__, "--serve-lean", str(lean_port)], env=env, cwd=REPO
        ),  # fmt: skip
        "aggregator": subprocess.Popen([sys.executable, "-m", "services.aggregator"], **quiet),
    }
    appdb = AppDB(db_url)
    try:
        wait_http(f"http://127.0.0.1:{port}")
        wait_http(f"http://127.0.0.1:{lean_port}")
        plan = LoadPlan(size["users"])
        seconds, connections = size["seconds"], size["connections"]
        lean_connections = size["lean_connections"]
        print(f"warming up; then {seconds} s per phase, {connections} connections "
              f"({lean_connections} to the lean path)", flush=True)  # fmt: skip
        pids = {name: proc.pid for name, proc in procs.items()} | {"nats": nats.process.pid}
        cpu = {}

        def phase(name: str, to: int, path: str, conns: int, rate: int) -> dict:
            before = cpu_seconds(pids)
            figures = run_load(to, plan, path, seconds, conns, rate)
            after = cpu_seconds(pids)
            # CPU seconds each process used (2 cores: 2 x seconds available).
            cpu[name] = {k: round(after[k] - before[k], 1) for k in pids} | {
                "load_generator": round(figures["generator_cpu_s"], 1)}  # fmt: skip
            print(f"{name}: {figures['per_s']:.0f}/s, p99 {figures['p99_ms']:.1f} ms, "
                  f"cpu {cpu[name]}", flush=True)  # fmt: skip
            return figures

        warm = run_load(port, plan, "/tracking/beat", 2, connections, MAX_RATE["flask"])
        warm_lean = run_load(lean_port, plan, "/tracking/beat", 2, lean_connections,
                             MAX_RATE["lean"])  # fmt: skip
        baseline = phase("flask_bare_204", port, "/bench/noop", connections, MAX_RATE["flask"])
        flask = phase("flask_beats", port, "/tracking/beat", connections, MAX_RATE["flask"])
        lean = phase("lean_beats", lean_port, "/tracking/beat", lean_connections,
                     MAX_RATE["lean"])  # fmt: skip
        print("draining the aggregator", flush=True)
        drained_at = time.perf_counter()
        drain(nats.url)
        drain_s = time.perf_counter() - drained_at
        lost_flask, _ = verify(appdb, warm["accepted"] + flask["accepted"])
        lost_lean, _ = verify(appdb, warm_lean["accepted"] + lean["accepted"])
        sent = warm["accepted"] + flask["accepted"] + warm_lean["accepted"] + lean["accepted"]
        lost, daily_exact = verify(appdb, sent)
    finally:
        appdb.dispose()
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
        nats.stop()
    return {
        "bench": "heartbeat",
        "seconds": seconds,
        "connections": connections,
        "lean_connections": lean_connections,
        # Issue 15: the lean path against the Flask/waitress stack answering a bare 204.
        "lean_beats_per_s": round(lean["per_s"]),
        "flask_bare_204_per_s": round(baseline["per_s"]),
        "ratio": round(lean["per_s"] / baseline["per_s"], 2),
        "lean_p50_ms": round(lean["p50_ms"], 1),
        "lean_p99_ms": round(lean["p99_ms"], 1),
        "lean_beats": len(lean["accepted"]),
        "lean_refused": lean["failures"],
        "lean_lost": lost_lean,
        "lost": lost,
        "daily_exact": daily_exact,
        # The Flask route itself (small sites), as before.
        "flask_beats_per_s": round(flask["per_s"]),
        "flask_p99_ms": round(flask["p99_ms"], 1),
        "flask_refused": flask["failures"],
        "flask_lost": lost_flask,
        "flask_bare_204_p99_ms": round(baseline["p99_ms"], 1),
        "drain_after_run_s": round(drain_s, 1),
        "generator_ran_out": [
            n
            for n, f in (("flask_bare_204", baseline), ("flask_beats", flask), ("lean_beats", lean))
            if f["ran_out"]
        ],  # fmt: skip
        "cpu_s": cpu,
    }


if __name__ == "__main__":
    main()
