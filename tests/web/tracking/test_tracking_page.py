"""The Time tracking page tells an admin how the site is set up: the session handler it found,
whether the page came through the proxy path with their MoodleSession cookie, and whether
heartbeats have been arriving — with the snippet to paste."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape as html_unescape

import pytest

from common.appdb import AppDB
from common.migrate import upgrade
from common.models.analytics import UsertimeSession
from common.moodle.demo.sessions import new_sid, sign_in
from common.nats_server import free_port
from tests.factories.sites import NOW
from tests.support import make_settings
from tests.web.conftest import sign_in as sign_in_to_manireports
from web.app import create_app

PROXIED = {
    "X-Forwarded-For": "203.0.113.5",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "moodle.example.com",
    "X-Forwarded-Prefix": "/manireports",
}


def text_of(page, element_id):
    html = page.get_data(as_text=True)
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no #{element_id}"
    return html_unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(2))).strip())


@pytest.fixture
def proxied_app(site, tmp_path, nats_server):  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url,
                             TRUSTED_PROXIES="1")  # fmt: skip
    upgrade(settings.database_url)
    application = create_app(settings)
    application.extensions["manireports"].clock = lambda: NOW
    yield application
    application.extensions["manireports"].close()


def test_through_the_proxy_path_with_a_live_moodle_session(proxied_app, site):
    site.moodle.config("dbsessions", "1")
    client = proxied_app.test_client()
    response = sign_in_to_manireports(client, "admin")
    assert response.status_code == 302
    client.set_cookie("MoodleSession", sign_in(site.moodle.engine, site.users["admin"], NOW))
    page = client.get("/tracking/", headers=PROXIED)
    assert page.status_code == 200
    assert "moodle.example.com/manireports/" in text_of(page, "proxy")
    assert "Database" in text_of(page, "handler") and "sessions" in text_of(page, "handler")
    assert "a live Moodle session of yours" in text_of(page, "cookie")
    assert text_of(page, "snippet") == (
        '<script src="https://moodle.example.com/manireports/static/js/heartbeat.js" defer>'
        "</script>"
    )
    assert "TRACKING_ALLOWED_ORIGINS</code> is not needed" in page.get_data(as_text=True)


def test_directly_without_the_cookie(app, client_as):
    page = client_as("admin").get("/tracking/")
    assert "reached directly" in text_of(page, "proxy")
    assert "Did not arrive" in text_of(page, "cookie")
    assert text_of(page, "last-beat") == "none yet"
    assert "No heartbeat has reached the aggregator yet" in page.get_data(as_text=True)


def test_a_cookie_that_is_not_a_live_session_says_why(app, site, client_as):
    client = client_as("admin")
    client.set_cookie("MoodleSession", sign_in(site.moodle.engine, 0, NOW))
    assert "not a live signed-in session (not logged in)" in text_of(client.get("/tracking/"),
                                                                     "cookie")  # fmt: skip
    client.set_cookie("MoodleSession", new_sid())
    assert "(unknown)" in text_of(client.get("/tracking/"), "cookie")


def test_recent_heartbeats_from_what_the_aggregator_stored(app, site, client_as):
    now = datetime.fromtimestamp(NOW, UTC)
    appdb = AppDB(app.extensions["manireports"].settings.database_url)
    with appdb.transaction() as db:
        for user, ago, estimated in (("ana", 1, False), ("ana", 3, False), ("ben", 20, False),
                                     ("cara", 30, False), ("dan", 2, True)):  # fmt: skip
            last = now - timedelta(hours=ago)
            db.add(UsertimeSession(userid=site.users[user], courseid=site.courses["Fire Safety"],
                                   cmid=0, estimated=estimated, sessionstart=last,
                                   lastbeat=last, duration=0))  # fmt: skip
    appdb.dispose()
    site.moodle._update("user", site.users["admin"], timezone="Europe/Paris")
    page = client_as("admin").get("/tracking/")
    assert text_of(page, "beat-sessions") == "3"  # the estimated one and the old one do not count
    assert text_of(page, "beat-learners") == "2"
    last = now - timedelta(hours=1)
    assert text_of(page, "last-beat") == f"{last.day} Nov 2026, {last.hour + 1:02d}:{last:%M} CET"


def test_redis_handler_states_and_refusal_counts(app, site, client_as):
    site.moodle.config("session_handler_class", "\\core\\session\\redis")
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(
        moodle_session_redis_url=f"redis://:secret@127.0.0.1:{free_port()}/3",
        moodle_session_redis_prefix="mdl_sess_",
    )
    learner = app.test_client()
    learner.set_cookie("MoodleSession", sign_in(site.moodle.engine, 1, NOW))  # the guest
    assert learner.post("/tracking/moodle-token").status_code == 401
    page = client_as("admin").get("/tracking/")
    handler = text_of(page, "handler")
    assert "Redis" in handler and "127.0.0.1" in handler and "/3" in handler
    assert "mdl_sess_" in handler and "not reachable" in handler
    assert "secret" not in page.get_data(as_text=True), "no password on the page"
    assert "guest 1" in page.get_data(as_text=True)


def test_redis_handler_without_a_store_says_what_to_set(app, site, client_as):
    site.moodle.config("session_handler_class", "\\core\\session\\redis")
    page = client_as("admin").get("/tracking/")
    assert "Set MOODLE_SESSION_REDIS_URL" in text_of(page, "handler")
