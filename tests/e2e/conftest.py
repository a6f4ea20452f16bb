"""A live ManiReports web tier on a seeded demo site, and a real headless Chromium."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from waitress.server import create_server

from common.migrate import upgrade
from common.moodle import MoodleSource
from common.moodle.demo import seed_site
from common.nats_server import free_port
from tests.support import make_settings
from web.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("e2e")
    summary = seed_site(f"sqlite:///{root / 'moodle.db'}", users=200, courses=8, companies=2,
                        days=90, seed=7)  # fmt: skip
    return root, summary.logins


@pytest.fixture(scope="module")
def live_server(demo_site, nats_server):  # type: ignore[no-untyped-def]
    root, _ = demo_site
    settings = make_settings(root, MOODLE_DATABASE_URL=f"sqlite:///{root / 'moodle.db'}",
                             NATS_URL=nats_server.url)  # fmt: skip
    upgrade(settings.database_url)
    app = create_app(settings)
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.close()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not CHROMIUM:
        pytest.skip("Debian chromium is not installed (make test installs it as root)")
    vendor = Path(__file__).resolve().parents[2] / "web/static/vendor/chart.umd.min.js"
    if not vendor.exists():
        pytest.skip("front-end vendor files missing: run `make vendor`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass(frozen=True)
class EnrolledStudent:
    """A demo student with a course they are actively enrolled in (the heartbeat endpoints
    refuse any other course)."""

    username: str
    password: str
    user_id: int
    course_id: int
    moodle_url: str


@pytest.fixture(scope="module")
def enrolled_student(demo_site) -> EnrolledStudent:  # type: ignore[no-untyped-def]
    """The first demo student and their first active enrolment, read from the Moodle tables."""
    root, logins = demo_site
    login = next(login for login in logins if login.role == "student")
    moodle_url = f"sqlite:///{root / 'moodle.db'}"
    source = MoodleSource(moodle_url)
    t = source.tables
    course = (
        select(t.enrol.c.courseid)
        .join(t.user_enrolments, t.user_enrolments.c.enrolid == t.enrol.c.id)
        .join(t.user, t.user.c.id == t.user_enrolments.c.userid)
        .where(t.user.c.username == login.username, t.enrol.c.status == 0,
               t.user_enrolments.c.status == 0, t.user_enrolments.c.timeend == 0)
        .order_by(t.enrol.c.courseid)
    )  # fmt: skip
    try:
        with source.engine.connect() as conn:
            course_id = int(conn.execute(course).scalars().first())
            user_id = int(
                conn.scalar(select(t.user.c.id).where(t.user.c.username == login.username))
            )
    finally:
        source.dispose()
    return EnrolledStudent(login.username, login.password, user_id, course_id, moodle_url)


@pytest.fixture
def clocked_page(browser) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A page in a fresh browser context (no cookies) whose timers the test drives
    (page.clock); the context is closed even when the test fails."""
    context = browser.new_context()
    page = context.new_page()
    page.clock.install()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def tracking_calls(clocked_page) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    """The statuses of the page's token exchanges and beats, in order, as they answer."""
    seen: dict[str, list[int]] = {"token": [], "beat": []}

    def record(response) -> None:  # type: ignore[no-untyped-def]
        for name, path in (("token", "/tracking/moodle-token"), ("beat", "/tracking/beat")):
            if response.url.endswith(path):
                seen[name].append(response.status)

    clocked_page.on("response", record)
    return seen


def sign_in(page, base_url: str, login) -> None:  # type: ignore[no-untyped-def]
    """Sign `login` in on `page` through the real sign-in form."""
    page.goto(f"{base_url}/login")
    page.fill("#username", login.username)
    page.fill("#password", login.password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def moodle_user_id(root: Path, username: str) -> int:
    """A demo user's Moodle id, read from the demo site's Moodle database."""
    source = MoodleSource(f"sqlite:///{root / 'moodle.db'}")
    try:
        with source.engine.connect() as conn:
            user = source.tables.user
            return int(conn.scalar(select(user.c.id).where(user.c.username == username)))
    finally:
        source.dispose()
