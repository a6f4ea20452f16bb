"""In a real browser: the job page of a job a real mailer is sending shows its progress and
its completion by itself — no reload — and stops polling once the job is final."""

from __future__ import annotations

import threading

from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from common.appdb import AppDB
from tests.services.mailer.conftest import configure, dispatch, make_job, smtp_config
from tests.support import service_env

RATE = 20.0


def first_company(root) -> int:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{root / 'moodle.db'}")
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT MIN(id) FROM mdl_company")).scalar_one())


def test_the_job_page_shows_completion_without_a_reload(
    live_server, browser, demo_site, nats_server, smtp_sink, spawn_service
):
    root, logins = demo_site
    appdb = AppDB(f"sqlite:///{root / 'app.db'}")
    company = first_company(root)
    configure(appdb, company, "smtp", smtp_config(smtp_sink), rate_per_s=RATE, chunk_size=20)
    job_id = make_job(appdb, 60, company, chunk_size=20)  # 3 s at 20/s
    admin = next(login for login in logins if login.role == "admin")

    page = browser.new_page()
    page.goto(f"{live_server}/login")
    page.fill("#username", admin.username)
    page.fill("#password", admin.password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{live_server}/jobs/view?job={job_id}")
    assert page.inner_text('[data-field="label"]') == "Waiting to start"
    page.evaluate("window.__sameDocument = true")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/jobs/progress" in r.url else None)

    env = service_env(root, nats_server.url, DATABASE_URL=appdb.url,
                      MOODLE_DATABASE_URL=f"sqlite:///{root / 'moodle.db'}")  # fmt: skip
    spawn_service("mailer", env)
    # Playwright's sync API holds this thread's event loop: the bus client runs in another.
    sender = threading.Thread(target=dispatch, args=(nats_server.url, job_id))
    sender.start()
    sender.join()

    label = page.locator('[data-field="label"]')
    expect(label).to_have_text("Sending", timeout=30_000)
    expect(label).to_have_text("Completed", timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    assert page.inner_text('[data-field="summary"]') == "Completed: 60 sent of 60"
    assert page.inner_text('[data-field="pct"]') == "100%"
    rate = float(page.inner_text('[data-field="rate"]').split()[0])
    assert 0 < rate <= RATE * 1.05, f"shown {rate}/s with a limit of {RATE}/s"
    assert page.is_hidden('[data-action="cancel"]')
    assert len(smtp_sink.recipients) == 60
    seen = len(polls)
    page.wait_for_timeout(2500)
    assert len(polls) == seen, "the page kept polling a finished job"
    appdb.dispose()
