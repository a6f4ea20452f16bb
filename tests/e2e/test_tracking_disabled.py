"""TIME_TRACKING_ENABLED=false in a real browser: the snippet on a Moodle page is refused a
token, stops itself, and sends no beat however long the page stays open and active."""

from __future__ import annotations

import threading

import pytest
from waitress.server import create_server

from common.migrate import upgrade
from common.nats_server import free_port
from tests.e2e.test_heartbeat_snippet import heartbeats_on_the_bus, moodle_page_server
from tests.support import make_settings
from web.app import create_app


@pytest.fixture(scope="module")
def disabled_stack(demo_site, nats_server, tmp_path_factory):  # type: ignore[no-untyped-def]
    root, _ = demo_site
    mr_port = free_port()
    moodle = moodle_page_server(f"http://127.0.0.1:{mr_port}/static/js/heartbeat.js")
    moodle_origin = f"http://127.0.0.1:{moodle.server_port}"
    settings = make_settings(
        tmp_path_factory.mktemp("tracking-off"),
        MOODLE_DATABASE_URL=f"sqlite:///{root / 'moodle.db'}",
        NATS_URL=nats_server.url,
        TRACKING_ALLOWED_ORIGINS=moodle_origin,
        TIME_TRACKING_ENABLED="false",
    )
    upgrade(settings.database_url)
    app = create_app(settings)
    server = create_server(app, host="127.0.0.1", port=mr_port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{mr_port}", moodle_origin
    moodle.shutdown()
    server.close()
    app.extensions["manireports"].close()


def test_the_snippet_stops_when_tracking_is_off(  # type: ignore[no-untyped-def]
    disabled_stack, enrolled_student, clocked_page, tracking_calls, nats_server
):
    reports, moodle_origin = disabled_stack
    student, page = enrolled_student, clocked_page
    page.goto(f"{reports}/login")
    page.fill("#username", student.username)
    page.fill("#password", student.password)
    page.click("button[type=submit]")
    before = heartbeats_on_the_bus(nats_server.url)
    refusals: list[int] = []
    page.on("response", lambda r: refusals.append(r.status) if "/tracking/" in r.url else None)
    page.goto(f"{moodle_origin}/course/view.php?id={student.course_id}")
    page.wait_for_function("() => true")
    page.clock.run_for(1000)
    page.wait_for_timeout(500)
    assert refusals and set(refusals) == {403}, "the token is refused"
    asked = len(refusals)
    for _ in range(4):  # two minutes of an active page: still nothing
        page.mouse.move(10, 10)
        page.clock.run_for(31_000)
        page.wait_for_timeout(200)
    assert tracking_calls["beat"] == []
    assert len(refusals) == asked, "stopped: no more token requests"
    assert heartbeats_on_the_bus(nats_server.url) == before
