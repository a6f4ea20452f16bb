"""The lean heartbeat endpoint (`manireports beat`): real uvicorn on a free port, real NATS.

Every case goes to the lean app and to the Flask route on the same settings, and both must
answer alike — status, JSON body and CORS headers — as both use web/tracking/beat_check.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import uvicorn
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from common.nats_server import free_port
from common.settings import Settings
from tests.factories.sites import NOW
from tests.metrics_text import samples, value
from tests.support import service_env
from tests.web.tracking.conftest import stored_beats
from web.app import create_app
from web.tracking.beat_app import UVICORN_OPTIONS, BeatApp
from web.tracking.tokens import HeartbeatTokens

REPO = Path(__file__).resolve().parents[3]
MOODLE = "https://moodle.example.com"
HOST = "lms.example"  # both servers are asked as this host, so "same origin" is the same
CORS_NAMES = ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
              "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
              "Access-Control-Max-Age")  # fmt: skip
_ids = iter(range(1, 1_000_000))


class PinnedBeatApp(BeatApp):
    """The lean app on the tests' fixed clock (the Flask app fixture pins the same)."""

    def now(self, headers: dict[bytes, bytes]) -> float:
        return float(NOW)


@dataclass
class Reply:
    status: int
    body: bytes
    cors: dict[str, str]
    vary_origin: bool


def _reply(status: int, body: bytes, headers) -> Reply:  # type: ignore[no-untyped-def]
    cors = {name: headers[name] for name in CORS_NAMES if name in headers}
    return Reply(status, body, cors, "Origin" in headers.get("Vary", ""))


@dataclass
class Pair:
    """The Flask route and the lean app, on the same settings, Moodle and bus."""

    flask: FlaskClient
    lean_url: str
    lean: BeatApp

    def send(self, method: str, body: bytes = b"", **headers: str) -> tuple[Reply, Reply]:
        headers = {"Host": HOST, "Content-Type": "text/plain", **headers}
        f = self.flask.open("/tracking/beat", method=method, data=body, headers=headers)
        lean = requests.request(method, f"{self.lean_url}/tracking/beat", data=body,
                                headers=headers, timeout=10)  # fmt: skip
        return (_reply(f.status_code, f.get_data(), f.headers),
                _reply(lean.status_code, lean.content, lean.headers))  # fmt: skip

    def both(self, method: str, body: bytes = b"", **headers: str) -> Reply:
        """The one answer both give (the test fails if they differ)."""
        flask_reply, lean_reply = self.send(method, body, **headers)
        assert lean_reply == flask_reply, (body, headers)
        return lean_reply


def serve(app: BeatApp) -> tuple[str, Callable[[], None]]:
    """Run `app` under uvicorn (uvloop, httptools: as `manireports beat`) on a free port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            **UVICORN_OPTIONS)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(15)

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture
def pair(app: Flask) -> Iterator[Callable[..., Pair]]:
    """A factory: the Flask route and a lean app, both on the app's settings with overrides."""
    started: list[Callable[[], None]] = []

    def make(**overrides: object) -> Pair:
        ctx = app.extensions["manireports"]
        settings: Settings = ctx.settings.with_overrides(**overrides)
        flask_app = app
        if {"nats_url", "moodle_database_url"} & overrides.keys():  # a Flask app of its own
            flask_app = create_app(settings)
            flask_app.extensions["manireports"].clock = lambda: NOW
            started.append(flask_app.extensions["manireports"].close)
        else:
            ctx.settings = settings
        lean = PinnedBeatApp(settings)
        url, stop = serve(lean)
        started.append(stop)
        return Pair(flask_app.test_client(), url, lean)

    yield make
    for stop in reversed(started):
        stop()


def token(settings: Settings, user_id: int, issued: float = NOW) -> str:
    return HeartbeatTokens(settings.secret_key, settings.heartbeat_token_ttl_s).issue(
        user_id, issued
    )[0]


def beat(token: object, course: object, cm: object = 0, beat_id: str | None = None) -> bytes:
    beat_id = beat_id or f"beat-{next(_ids):06d}"
    return json.dumps({"token": token, "course": course, "cm": cm, "id": beat_id}).encode()


def problem(reply: Reply) -> dict:
    return json.loads(reply.body)


def test_an_accepted_beat_reaches_the_stream(pair, app, site, nats_server):
    servers = pair()
    ana = token(servers.lean.settings, site.users["ana"])
    course = site.courses["Fire Safety"]
    cm = site.moodle.module(course).cm_id
    response = requests.post(f"{servers.lean_url}/tracking/beat", timeout=10,
                             data=beat(ana, course, cm, "lean-beat-1"))  # fmt: skip
    assert response.status_code == 204 and response.content == b""
    assert stored_beats(nats_server.url, expect=1) == [
        {"id": "lean-beat-1", "u": site.users["ana"], "c": course, "m": cm, "t": NOW}
    ]
    assert servers.lean.publisher is not None and servers.lean.publisher.published == 1


def test_both_answer_every_case_alike(pair, site, nats_server):
    servers = pair(tracking_allowed_origins=(MOODLE,))
    settings = servers.lean.settings
    ana = token(settings, site.users["ana"])
    fire, forklift = site.courses["Fire Safety"], site.courses["Forklift"]
    fire_cm = site.moodle.module(fire).cm_id
    version, user, expires, signature = ana.split(".")
    forged = ".".join([version, str(site.users["ben"]), expires, signature])
    expired = token(settings, site.users["ana"], issued=NOW - settings.heartbeat_token_ttl_s - 1)
    cases = [
        # (body, headers, status, field of the refusal)
        (beat(ana, fire, fire_cm), {}, 204, None),
        (beat(ana, fire), {"Origin": MOODLE}, 204, None),
        (beat(forged, fire), {}, 401, "token"),
        (beat(expired, fire), {"Origin": MOODLE}, 401, "token"),
        (beat(None, fire), {}, 401, "token"),
        (beat("v1.2.3", fire), {}, 401, "token"),
        (b"not json", {"Origin": MOODLE}, 400, None),
        (b"[1]", {}, 400, None),
        (b"[" * 1000, {}, 400, None),
        (beat(ana, fire, beat_id="short"), {}, 400, "id"),
        (beat(ana, fire, beat_id="has spaces in it"), {}, 400, "id"),
        (beat(ana, "5"), {}, 400, "course"),
        (beat(ana, 0), {}, 400, "course"),
        (beat(ana, fire, -1), {}, 400, "cm"),
        (beat(ana, fire, beat_id="x" * 2000), {"Origin": MOODLE}, 413, None),
        (beat(ana, forklift), {"Origin": MOODLE}, 403, "course"),
        (beat(ana, 987_654), {}, 403, "course"),
        (beat(ana, 1), {}, 403, "course"),  # the site's front page
        (beat(ana, fire, site.moodle.module(forklift).cm_id), {}, 403, "cm"),
        (beat(ana, fire), {"Origin": "https://evil.example"}, 403, "Origin"),
    ]
    for body, headers, status, field in cases:
        reply = servers.both("POST", body, **headers)
        assert reply.status == status, (body, reply)
        if status != 204:
            assert problem(reply)["error"]
            assert problem(reply).get("field") == field, (body, reply)
        if headers.get("Origin") == MOODLE:
            assert reply.cors == {"Access-Control-Allow-Origin": MOODLE} and reply.vary_origin
        else:
            assert reply.cors == {}
    # The two accepted cases, once through each server.
    assert len(stored_beats(nats_server.url, expect=4)) == 4


def test_preflight_and_same_origin_without_a_list(pair, site, nats_server):
    servers = pair(tracking_allowed_origins=(MOODLE,))
    preflight = servers.both("OPTIONS", Origin=MOODLE)
    assert preflight.status == 204 and preflight.body == b""
    assert preflight.cors == {
        "Access-Control-Allow-Origin": MOODLE,
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "86400",
    }
    refused = servers.both("OPTIONS", Origin="https://evil.example")
    assert refused.status == 204 and "Access-Control-Allow-Origin" not in refused.cors
    # With no list, only the server's own origin (as the browser sees it) may post.
    open_servers = pair(tracking_allowed_origins=())
    ana = token(open_servers.lean.settings, site.users["ana"])
    course = site.courses["Fire Safety"]
    own = open_servers.both("POST", beat(ana, course), Origin=f"http://{HOST}")
    assert own.status == 204 and own.cors == {"Access-Control-Allow-Origin": f"http://{HOST}"}
    other = open_servers.both("POST", beat(ana, course), Origin=MOODLE)
    assert other.status == 403 and problem(other)["field"] == "Origin"


def test_disabled_tracking_and_an_absent_bus_answer_alike(pair, site, nats_server):
    disabled = pair(time_tracking_enabled=False)
    ana = token(disabled.lean.settings, site.users["ana"])
    reply = disabled.both("POST", beat(ana, site.courses["Fire Safety"]))
    assert reply.status == 403 and problem(reply)["tracking"] is False
    no_bus = pair(nats_url=f"nats://127.0.0.1:{free_port()}", time_tracking_enabled=True)
    reply = no_bus.both("POST", beat(ana, site.courses["Fire Safety"]))
    assert reply.status == 503 and problem(reply) == {"error": "try again later"}
    assert stored_beats(nats_server.url) == []


def test_an_unreachable_moodle_db_is_503_from_both(pair, site, nats_server):
    servers = pair(moodle_database_url=f"mysql+pymysql://root@127.0.0.1:{free_port()}/none")
    ana = token(servers.lean.settings, site.users["ana"])
    reply = servers.both("POST", beat(ana, site.courses["Fire Safety"]))
    assert reply.status == 503 and problem(reply) == {"error": "try again later"}
    assert stored_beats(nats_server.url) == []


def test_both_keep_enrolment_answers_for_the_same_time(pair, site, nats_server):
    """An unenrolment counts from the next query: a user already cached beats on (within a
    minute) on both servers; one first seen after it is refused by both."""
    servers = pair()
    ben, dan = (token(servers.lean.settings, site.users[name]) for name in ("ben", "dan"))
    fire = site.courses["Fire Safety"]
    assert servers.both("POST", beat(ben, fire)).status == 204
    ue = site.moodle.tables.user_enrolments
    with site.moodle.engine.begin() as conn:
        for name in ("ben", "dan"):
            conn.execute(ue.update().where(ue.c.userid == site.users[name]).values(status=1))
    assert servers.both("POST", beat(ben, fire)).status == 204  # from each one's cache
    refused = servers.both("POST", beat(dan, fire))
    assert refused.status == 403 and problem(refused)["field"] == "course"
    assert len(stored_beats(nats_server.url, expect=4)) == 4


def test_enrolment_queries_run_off_the_event_loop_and_are_cached(pair, site, nats_server):
    servers = pair()
    threads: list[str] = []
    event.listen(servers.lean.moodle.engine, "before_cursor_execute",
                 lambda *_: threads.append(threading.current_thread().name))  # fmt: skip
    ana = token(servers.lean.settings, site.users["ana"])
    course = site.courses["Fire Safety"]
    cm = site.moodle.module(course).cm_id
    url = f"{servers.lean_url}/tracking/beat"
    for _ in range(5):
        assert requests.post(url, data=beat(ana, course, cm), timeout=10).status_code == 204
    # One query for ana's courses, one for the course's activities; then the cache answers.
    assert len(threads) == 2 and all(name.startswith("beat-scope") for name in threads)
    assert len(stored_beats(nats_server.url, expect=5)) == 5


def test_health_and_unknown_paths(pair, nats_server):
    servers = pair()
    health = requests.get(f"{servers.lean_url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "checks": {"bus": "ok", "moodle": "ok"}}
    assert requests.get(f"{servers.lean_url}/tracking/beat", timeout=10).status_code == 405
    assert requests.get(f"{servers.lean_url}/dashboards/", timeout=10).status_code == 404
    no_bus = pair(nats_url=f"nats://127.0.0.1:{free_port()}")
    degraded = requests.get(f"{no_bus.lean_url}/healthz", timeout=10)
    assert degraded.status_code == 503 and degraded.json()["checks"]["bus"] != "ok"


def test_metrics_count_the_lean_paths_beats_as_the_web_tiers(pair, site, nats_server):
    scrape_token = "scrape-token-0123456789"
    servers = pair(metrics_token=scrape_token)
    url = f"{servers.lean_url}/metrics"

    def scrape() -> dict:
        answer = requests.get(url, headers={"Authorization": f"Bearer {scrape_token}"}, timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/")
        return samples(answer.text)

    before = scrape()
    ana = token(servers.lean.settings, site.users["ana"])
    course = site.courses["Fire Safety"]
    beats_url = f"{servers.lean_url}/tracking/beat"
    answers = [requests.post(beats_url, data=beat(ana, course), timeout=10) for _ in range(3)]
    answers.append(requests.post(beats_url, data=beat("v1.2.3", course), timeout=10))
    assert [a.status_code for a in answers] == [204, 204, 204, 401]
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("manireports_heartbeats_accepted_total") == 3
    route = {"endpoint": "tracking.beat", "method": "POST"}
    assert delta("manireports_http_request_duration_seconds_count", **route) == 4
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code \
        == 401  # fmt: skip
    tokenless = pair(metrics_token=None)
    assert requests.get(f"{tokenless.lean_url}/metrics", timeout=10).status_code == 404


def test_the_beat_command_serves_and_publishes_before_it_exits(site, tmp_path, nats_server):
    """`manireports beat` as deployed: real time, its own process; SIGTERM after a burst of
    beats still publishes every beat it answered 204."""
    port = free_port()
    env = service_env(tmp_path, nats_server.url, MOODLE_DATABASE_URL=site.url,
                      BEAT_PORT=str(port))  # fmt: skip
    from common.migrate import upgrade

    upgrade(env["DATABASE_URL"])
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "beat"], env=env, cwd=REPO,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "beat did not start"
            time.sleep(0.1)
        tokens = HeartbeatTokens(env["SECRET_KEY"], 3600)
        ana = tokens.issue(site.users["ana"], time.time())[0]
        course = site.courses["Fire Safety"]
        with requests.Session() as http:
            answers = [http.post(f"{base}/tracking/beat", data=beat(ana, course), timeout=10)
                       for _ in range(50)]  # fmt: skip
        assert [a.status_code for a in answers] == [204] * 50
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully (lifespan: the publisher drains), then re-raises the
        # signal so the process ends as a SIGTERM would end it.
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        assert "were not acked" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    beats = stored_beats(nats_server.url, expect=50)
    assert len(beats) == 50 and {b["u"] for b in beats} == {site.users["ana"]}
    assert all(abs(b["t"] - time.time()) < 60 for b in beats)
