"""A learner signed in to the demo Moodle only — never to ManiReports — is tracked: ManiReports
is served under the Moodle host's /manireports/ path (tests/fakes/moodle_web.py, as
deploy/nginx-moodle-path.conf does it), the snippet's token comes from the learner's
MoodleSession cookie, and the beats reach the aggregator's daily time. A visitor who is not
signed in, and a browser with a forged cookie, send nothing."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from waitress.server import create_server

from common.appdb import AppDB
from common.migrate import upgrade
from common.models.analytics import UsertimeDaily
from common.moodle.demo.sessions import new_sid
from common.nats_server import EmbeddedNatsServer, free_port
from tests.fakes.moodle_web import PROXY_PATH, DemoMoodleWeb
from tests.support import ServiceProcess, make_settings, service_env, wait_for
from web.app import create_app

SNIPPET = f'<script src="{PROXY_PATH}/static/js/heartbeat.js" defer></script>'


@pytest.fixture(scope="module")
def moodle_host(demo_site, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Demo Moodle on one host, ManiReports under its /manireports/, an aggregator behind."""
    root, _ = demo_site
    tmp = tmp_path_factory.mktemp("moodle-only")
    nats = EmbeddedNatsServer(tmp / "nats").start()
    moodle_url = f"sqlite:///{root / 'moodle.db'}"
    env = {"MOODLE_DATABASE_URL": moodle_url, "TRUSTED_PROXIES": "1"}
    settings = make_settings(tmp, NATS_URL=nats.url, **env)
    upgrade(settings.database_url)
    app = create_app(settings)
    port = free_port()
    # As `manireports web` serves it: the app, not waitress, decides which proxy it believes.
    server = create_server(app, host="127.0.0.1", port=port, threads=4,
                           clear_untrusted_proxy_headers=False)  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    aggregator = ServiceProcess("aggregator", service_env(tmp, nats.url, **env), tmp / "agg.log")
    moodle = DemoMoodleWeb(moodle_url, f"http://127.0.0.1:{port}", SNIPPET).start()
    yield moodle, AppDB(settings.database_url), aggregator
    moodle.stop()
    aggregator.stop()
    server.close()
    app.extensions["manireports"].close()
    nats.stop()


def daily_seconds(appdb: AppDB) -> dict[tuple[int, int], int]:
    d = UsertimeDaily
    with appdb.transaction() as db:
        rows = db.execute(select(d.userid, d.courseid, d.seconds).where(d.estimated.is_(False)))
        return {(r.userid, r.courseid): r.seconds for r in rows}


def until(page, predicate, message: str, timeout_s: float = 10) -> None:  # type: ignore[no-untyped-def]
    """Wait for `predicate` while letting Playwright deliver its events (time.sleep would not)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        page.wait_for_timeout(100)


def test_a_learner_signed_in_to_moodle_only_is_tracked(
    moodle_host, enrolled_student, clocked_page, tracking_calls
):
    moodle, appdb, _ = moodle_host
    student, page, seen = enrolled_student, clocked_page, tracking_calls
    page.goto(f"{moodle.base_url}/login/index.php")
    page.fill("#username", student.username)
    page.fill("#password", student.password)
    page.click("#loginbtn")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert "MoodleSession" in cookies and cookies["MoodleSession"]["path"] == "/"
    assert "session" not in cookies, "never signed in to ManiReports"

    page.goto(f"{moodle.base_url}/course/view.php?id={student.course_id}")
    page.clock.run_for(1000)
    until(page, lambda: seen["beat"] == [204], "the first beat")
    assert seen["token"] == [200], "the token came from the Moodle session"
    page.wait_for_timeout(2200)  # beats are timed by the server's clock: let real seconds pass
    page.clock.run_for(31_000)
    until(page, lambda: seen["beat"] == [204, 204], "the second beat")

    def tracked() -> int:
        return daily_seconds(appdb).get((student.user_id, student.course_id), 0)

    assert wait_for(tracked, timeout_s=30, message="the learner's daily time") >= 2
    assert set(daily_seconds(appdb)) == {(student.user_id, student.course_id)}, (
        "nobody else was tracked"
    )


@pytest.mark.parametrize("cookie", ["none", "forged"])
def test_visitors_and_forged_cookies_send_nothing(
    moodle_host, enrolled_student, clocked_page, tracking_calls, cookie
):
    moodle, appdb, _ = moodle_host
    page, seen = clocked_page, tracking_calls
    before = daily_seconds(appdb)
    if cookie == "forged":
        host = moodle.base_url.split("//", 1)[1].split(":")[0]
        page.context.add_cookies([{"name": "MoodleSession", "value": new_sid(), "domain": host,
                                   "path": "/"}])  # fmt: skip
    page.goto(f"{moodle.base_url}/course/view.php?id={enrolled_student.course_id}")
    page.clock.run_for(1000)
    until(page, lambda: seen["token"] == [401], "the refusal")
    page.clock.run_for(120_000)
    page.wait_for_timeout(300)
    assert seen["beat"] == [] and seen["token"] == [401], "the snippet stopped"
    assert daily_seconds(appdb) == before


NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def nginx_config(example: str, port: int, app_port: int, moodle_port: int, root: Path) -> str:
    """deploy/nginx-moodle-path.conf as it is, on plain HTTP and local ports, with Moodle's own
    location in front of the stand-in."""
    server = (
        example.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
        .replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};")
        .replace("server_name moodle.example.com;", "server_name localhost;\n"
                 f"    location / {{ proxy_pass http://127.0.0.1:{moodle_port}; }}")
    )  # fmt: skip
    temp = " ".join(f"{kind}_temp_path {root / kind};" for kind in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
    return (f"pid {root / 'nginx.pid'}; error_log {root / 'error.log'};\n"
            f"events {{}}\nhttp {{ access_log off; {temp}\n{server}\n}}\n")  # fmt: skip


def test_the_nginx_example_serves_manireports_under_moodles_host(
    moodle_host, enrolled_student, tmp_path
):
    """The deploy example itself, in a real nginx: the app's links keep /manireports, the
    cookie of the Moodle host reaches the token exchange, a forged one gets nothing."""
    if not NGINX:
        pytest.skip("nginx is not installed")
    moodle, _, _ = moodle_host
    student = enrolled_student
    app_port = int(moodle.upstream.port)
    moodle_port = int(moodle.base_url.rsplit(":", 1)[1])
    port = free_port()
    example = (Path(__file__).resolve().parents[2] / "deploy/nginx-moodle-path.conf").read_text()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(example, port, app_port, moodle_port, tmp_path))
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/login/index.php"), message="nginx up")
        session = requests.Session()
        session.post(f"{base}/login/index.php", allow_redirects=False,
                     data={"username": student.username, "password": student.password})  # fmt: skip
        assert session.cookies.get("MoodleSession")
        token = session.post(f"{base}/manireports/tracking/moodle-token")
        assert token.status_code == 200, token.text
        assert token.json()["token"].split(".")[1] == str(student.user_id)
        bare = requests.get(f"{base}/manireports", allow_redirects=False)
        assert bare.status_code == 301 and bare.headers["Location"].endswith("/manireports/")
        login_page = requests.get(f"{base}/manireports/login")
        assert 'href="/manireports/static/css/app.css"' in login_page.text  # SCRIPT_NAME
        refused = requests.post(f"{base}/manireports/tracking/moodle-token",
                                cookies={"MoodleSession": new_sid()})  # fmt: skip
        assert refused.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
