"""A live ManiReports web tier on a seeded demo site, and a real headless Chromium."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from waitress.server import create_server

from common.migrate import upgrade
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
