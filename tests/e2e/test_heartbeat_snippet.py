"""The heartbeat snippet in a real browser, on a "Moodle" page of another origin: it beats
while the page is visible, the beats reach JetStream, and it stops while the page is hidden.
The page is a course the student is enrolled in (the endpoint refuses any other); the student,
the page with its driven clock and the calls it makes are the fixtures of conftest.py."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from waitress.server import create_server

from common.bus import Bus
from common.migrate import upgrade
from common.nats_server import free_port
from tests.support import make_settings, wait_for
from web.app import create_app


def moodle_page_server(script_url: str) -> ThreadingHTTPServer:
    """/course/view.php?id=N: a course page as Moodle marks it (body class course-N)."""

    class MoodlePage(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            course = parse_qs(urlsplit(self.path).query).get("id", ["0"])[0]
            page = (
                f'<!doctype html><html><body id="page-course-view" class="course-{int(course)} '
                f'cmid-0"><h1>A Moodle course</h1><script src="{script_url}" defer></script>'
                "</body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), MoodlePage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def heartbeats_on_the_bus(nats_url: str) -> int:
    async def count():
        bus = await Bus.connect(nats_url, name="test")
        await bus.ensure_streams()
        info = await bus.js.stream_info("HEARTBEATS")
        await bus.close()
        return info.state.messages

    # Playwright's sync API owns this thread's event loop: ask from another thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, count()).result(timeout=30)


@pytest.fixture(scope="module")
def tracking_stack(demo_site, nats_server, tmp_path_factory):  # type: ignore[no-untyped-def]
    root, _ = demo_site
    mr_port = free_port()
    moodle = moodle_page_server(f"http://127.0.0.1:{mr_port}/static/js/heartbeat.js")
    moodle_origin = f"http://127.0.0.1:{moodle.server_port}"
    settings = make_settings(
        tmp_path_factory.mktemp("tracking"),
        MOODLE_DATABASE_URL=f"sqlite:///{root / 'moodle.db'}",
        NATS_URL=nats_server.url,
        TRACKING_ALLOWED_ORIGINS=moodle_origin,
    )
    upgrade(settings.database_url)
    app = create_app(settings)
    server = create_server(app, host="127.0.0.1", port=mr_port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{mr_port}", moodle_origin
    moodle.shutdown()
    server.close()
    app.extensions["manireports"].close()


def test_snippet_beats_while_visible_and_stops_while_hidden(
    tracking_stack, enrolled_student, clocked_page, tracking_calls, nats_server
):
    reports, moodle_origin = tracking_stack
    student, page = enrolled_student, clocked_page
    page.goto(f"{reports}/login")
    page.fill("#username", student.username)
    page.fill("#password", student.password)
    page.click("button[type=submit]")

    beats = tracking_calls["beat"]
    before = heartbeats_on_the_bus(nats_server.url)
    page.goto(f"{moodle_origin}/course/view.php?id={student.course_id}")
    page.wait_for_function("() => true")
    page.clock.run_for(1000)
    page.wait_for_timeout(500)
    assert beats == [204], "the first beat goes out when the page loads"

    page.clock.run_for(31_000)  # one 20–30 s interval
    page.wait_for_timeout(500)
    assert beats == [204, 204]

    page.evaluate("""() => {
        Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    page.clock.run_for(120_000)
    page.wait_for_timeout(500)
    assert beats == [204, 204], "no beats while the page is hidden"

    page.evaluate("""() => {
        Object.defineProperty(document, "visibilityState", {value: "visible", configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    page.clock.run_for(1000)
    page.wait_for_timeout(500)
    assert beats == [204, 204, 204], "visible again: beating again"

    def reached_bus():
        return heartbeats_on_the_bus(nats_server.url) - before >= 1

    wait_for(reached_bus, timeout_s=10, message="beats published to JetStream")
