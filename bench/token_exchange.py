"""Benchmark: a heartbeat token from a learner's Moodle session, against the plain token endpoint.

Starts the web tier in its own process (waitress, the app as `manireports web` builds it) on a
Moodle DB holding the bench learners, one live `sessions` row each, and five times as many rows
of visitors who are not logged in. In the same run and on the same server, an open-loop load
generator on loopback asks at a fixed rate (200 a second by default), in alternating blocks:

- **exchange**: `POST /tracking/moodle-token` with a random learner's `MoodleSession` cookie
  (the throttle read in the app DB, the session and user read in the Moodle DB, a token);
- **plain** (the baseline): `GET /tracking/token` with a ManiReports sign-in (the sign-in's row
  read in the app DB, a token).

Latency is measured from each request's scheduled start (so a stall is not hidden by the
requests it delays). The target: the exchange adds under 5 ms at the 95th percentile.

    python bench/token_exchange.py --quick                  # ≈1 minute, SQLite
    python bench/token_exchange.py --mariadb mysql+pymysql://root@127.0.0.1:3306/test

With `--mariadb` (or MANIREPORTS_TEST_MARIADB_URL set) the Moodle DB and the app DB are fresh
databases on that server, dropped afterwards. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import requests
from passlib.hash import sha512_crypt
from sqlalchemy import text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.db import make_engine  # noqa: E402
from common.migrate import upgrade  # noqa: E402
from common.moodle.demo.sessions import new_sid  # noqa: E402
from common.moodle.tables import MoodleTables, recreate_site_tables  # noqa: E402
from common.nats_server import free_port  # noqa: E402

QUICK = {"learners": 2_000, "seconds": 10}
FULL = {"learners": 20_000, "seconds": 40}
RATE = 200  # requests a second
BLOCK_S = 1.0  # the kinds alternate every second, so both meet the same machine load
CONNECTIONS = 16
SIGNED_IN = 20  # ManiReports sign-ins for the baseline
VISITORS_PER_LEARNER = 5
SECRET = "bench-secret-" + "k" * 40
PASSWORD = "Bench-pass-1"
FIRST_USER = 1000
WEB_THREADS = 8  # `manireports web` default
IN_PROCESS_REQUESTS = 1000


def serve(port: int) -> None:
    import waitress

    from web.app import create_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    waitress.serve(create_app(), host="127.0.0.1", port=port, threads=WEB_THREADS, _quiet=True)


def seed_moodle(url: str, learners: int, now: int) -> list[str]:
    """The bench learners (a fast-hash password for the few who sign in to ManiReports), one
    live session each, and visitors' sessions; returns the learners' session ids."""
    tables = MoodleTables()
    engine = make_engine(url)
    fast_hash = sha512_crypt.using(rounds=5000).hash(PASSWORD)
    users = range(FIRST_USER, FIRST_USER + learners)
    sids = [new_sid() for _ in users]
    rows = [
        {"sid": sid, "userid": user, "state": 0, "timecreated": now - 600,
         "timemodified": now - random.randrange(3600)}
        for user, sid in zip(users, sids, strict=True)
    ]  # fmt: skip
    rows += [
        {"sid": new_sid(), "userid": 0, "state": 0, "timecreated": now - 60, "timemodified": now}
        for _ in range(learners * VISITORS_PER_LEARNER)
    ]
    random.shuffle(rows)
    with engine.begin() as conn:
        recreate_site_tables(conn, iomad=False)
        conn.execute(tables.config.insert(), [
            {"name": "siteguest", "value": "1"}, {"name": "siteadmins", "value": "2"},
            {"name": "sessiontimeout", "value": "28800"}, {"name": "dbsessions", "value": "1"},
        ])  # fmt: skip
        conn.execute(tables.user.insert(), [
            {"id": u, "username": f"bench{u}", "auth": "manual", "confirmed": 1, "mnethostid": 1,
             "password": fast_hash if u < FIRST_USER + SIGNED_IN else ""}
            for u in users
        ])  # fmt: skip
        for start in range(0, len(rows), 10_000):
            conn.execute(tables.sessions.insert(), rows[start : start + 10_000])
    engine.dispose()
    return sids


def sign_in_to_manireports(base: str) -> list[str]:
    """ManiReports session cookies of the first SIGNED_IN learners, through the sign-in form."""
    cookies = []
    for user in range(FIRST_USER, FIRST_USER + SIGNED_IN):
        session = requests.Session()
        page = session.get(f"{base}/login").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert token, "no CSRF token on /login"
        form = {"username": f"bench{user}", "password": PASSWORD, "csrf_token": token.group(1)}
        response = session.post(f"{base}/login", allow_redirects=False, data=form)
        assert response.status_code == 302, f"bench{user} could not sign in"
        cookies.append(str(session.cookies["session"]))
    return cookies


class Load:
    """Open-loop requests at a fixed rate over keep-alive connections, one per worker thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        return conn

    def _one(self, method: str, path: str, cookie: str, scheduled: float) -> tuple[float, int]:
        conn = self._conn()
        try:
            conn.request(method, path, headers={"Cookie": cookie, "Content-Length": "0"})
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            status = 0
        return time.perf_counter() - scheduled, status

    def run(self, pool, method: str, path: str, cookies: list[str], seconds: float) -> list:  # type: ignore[no-untyped-def]
        futures = []
        start = time.perf_counter() + 0.05
        for i in range(int(seconds * RATE)):
            scheduled = start + i / RATE
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(self._one, method, path, random.choice(cookies), scheduled))
        return [f.result() for f in futures]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def summary(results: list[tuple[float, int]]) -> dict[str, float]:
    latencies = [latency * 1000 for latency, status in results if status == 200]
    return {
        "requests": len(results),
        "ok": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
    }


def in_process(env: dict[str, str], signed_in: list[str], moodle: list[str]) -> dict:
    """Each request's own cost, one at a time in this process (no network, no queueing): the
    figure that stays put when the machine is busy with other work."""
    from common.settings import load_settings
    from web.app import create_app

    app = create_app(load_settings(env))
    client = app.test_client()
    figures = {}
    for kind, method, path, cookies in (
        ("plain", "GET", "/tracking/token", signed_in),
        ("exchange", "POST", "/tracking/moodle-token", moodle),
    ):
        times = []
        for _ in range(IN_PROCESS_REQUESTS):
            name, _, value = random.choice(cookies).partition("=")
            client.set_cookie(name, value)
            started = time.perf_counter()
            status = client.open(path, method=method).status_code
            times.append((time.perf_counter() - started, status))
            client.delete_cookie(name)
        figures[kind] = summary(times)
    app.extensions["manireports"].close()
    return figures


def mariadb_database(stack: ExitStack, server_url: str, name: str) -> str:
    server = make_url(server_url)
    database = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server.render_as_string(hide_password=False))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{database}`"))
        admin.dispose()

    stack.callback(drop)
    return server.set(database=database).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--mariadb",
        default=os.environ.get("MANIREPORTS_TEST_MARIADB_URL"),
        help="server URL: Moodle and app DBs on MariaDB (default: SQLite)",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-token-") as scratch, ExitStack() as stack:
        root = Path(scratch)
        if args.mariadb:
            moodle_url = mariadb_database(stack, args.mariadb, "moodle")
            app_url = mariadb_database(stack, args.mariadb, "app")
        else:
            moodle_url, app_url = f"sqlite:///{root / 'moodle.db'}", f"sqlite:///{root / 'app.db'}"
        figures = run(root, size, moodle_url, app_url)
        figures["backend"] = "mariadb" if args.mariadb else "sqlite"
    print(json.dumps(figures))


def run(root: Path, size: dict[str, int], moodle_url: str, app_url: str) -> dict[str, object]:
    now = int(time.time())
    sids = seed_moodle(moodle_url, size["learners"], now)
    upgrade(app_url)
    port = free_port()
    env = {**os.environ, "MANIREPORTS_INSTANCE": str(root / "instance"), "DATABASE_URL": app_url,
           "MOODLE_DATABASE_URL": moodle_url, "SECRET_KEY": SECRET,
           "NATS_URL": f"nats://127.0.0.1:{free_port()}"}  # fmt: skip
    web = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env, cwd=REPO)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/login", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        signed_in = [f"session={cookie}" for cookie in sign_in_to_manireports(base)]
        moodle = [f"MoodleSession={sid}" for sid in sids]
        load = Load(port)
        plain: list[tuple[float, int]] = []
        exchange: list[tuple[float, int]] = []
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            load.run(pool, "GET", "/tracking/token", signed_in, 1)  # warm-up
            load.run(pool, "POST", "/tracking/moodle-token", moodle, 1)
            for _ in range(int(size["seconds"] / BLOCK_S)):
                plain += load.run(pool, "GET", "/tracking/token", signed_in, BLOCK_S)
                exchange += load.run(pool, "POST", "/tracking/moodle-token", moodle, BLOCK_S)
    finally:
        web.terminate()
        web.wait(timeout=30)
    service = in_process(env, signed_in, moodle)
    ours, base_figures = summary(exchange), summary(plain)
    added = round(ours["p95_ms"] - base_figures["p95_ms"], 2)
    return {
        "bench": "token_exchange",
        "rate_per_s": RATE,
        "learners": size["learners"],
        "session_rows": size["learners"] * (1 + VISITORS_PER_LEARNER),
        "exchange": ours,
        "baseline_plain_token": base_figures,
        "p95_ms": ours["p95_ms"],
        "baseline_p95_ms": base_figures["p95_ms"],
        "added_p95_ms": added,
        "ratio": round(ours["p95_ms"] / base_figures["p95_ms"], 2),
        "in_process": service,
        "target_added_p95_ms": 5,
        "met": added < 5 and ours["ok"] == ours["requests"],
    }


if __name__ == "__main__":
    main()
