"""Heartbeat tokens from a learner's Moodle session (the sessions table): the session's own user
gets one; a forged, stale, ended, guest, visitor, deleted or suspended session, or a browser
that names someone else, gets the same plain 401 — and nothing in Moodle is ever written."""

import json

import pytest
from sqlalchemy import select

from common.moodle.demo.sessions import new_sid, sign_in
from tests.factories.sites import DAY, NOW
from tests.web.tracking.conftest import stored_beats
from web.app import create_app
from web.tracking.exchange import GUESS_LIMIT
from web.tracking.routes import NO_MOODLE_SESSION

MOODLE = "https://moodle.example.com"
EIGHT_HOURS = 8 * 3600


def moodle_session(site, user, **row):
    user_id = site.users[user] if isinstance(user, str) else user
    return sign_in(site.moodle.engine, user_id, NOW, **row)


def exchange(client, sid=None, body=None, **environ):
    if sid is not None:
        client.set_cookie("MoodleSession", sid)
    data = json.dumps(body) if body is not None else None
    return client.post("/tracking/moodle-token", data=data, content_type="application/json",
                       environ_base=environ)  # fmt: skip


def token_user(app, response):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    from web.tracking.routes import tracking

    with app.test_request_context():
        return tracking().tokens.verify(response.get_json()["token"], NOW)


def refused(response):
    assert response.status_code == 401, response.get_data(as_text=True)
    # The same answer whatever the reason: a guesser learns nothing about a session id.
    assert response.get_json() == {"error": NO_MOODLE_SESSION}
    return True


def moodle_rows(site):
    """Everything ManiReports could write to by mistake: the sessions and user tables."""
    t = site.moodle.tables
    with site.moodle.engine.connect() as conn:
        sessions = conn.execute(select(t.sessions).order_by(t.sessions.c.id)).all()
        users = conn.execute(select(t.user).order_by(t.user.c.id)).all()
    return sessions, users


def test_a_learner_signed_in_to_moodle_only_gets_a_token_that_beats_for_them(
    app, site, nats_server
):
    sid = moodle_session(site, "ana")
    before = moodle_rows(site)
    client = app.test_client()
    assert token_user(app, exchange(client, sid)) == site.users["ana"]
    # The request may not choose the user: naming ana is fine, the token is the session's.
    assert token_user(app, exchange(client, sid, {"user": site.users["ana"]})) == site.users["ana"]
    token = exchange(client, sid).get_json()["token"]
    beat = {"token": token, "course": site.courses["Fire Safety"], "id": "moodle-only-1"}
    response = app.test_client().post("/tracking/beat", data=json.dumps(beat),
                                      content_type="text/plain")  # fmt: skip
    assert response.status_code == 204
    assert [b["u"] for b in stored_beats(nats_server.url, expect=1)] == [site.users["ana"]]
    assert moodle_rows(site) == before, "the Moodle DB is only read"


@pytest.mark.parametrize(
    ("case", "user", "row"),
    [
        ("expired", "ana", {"timemodified": NOW - EIGHT_HOURS - 1}),
        ("ended", "ana", {"state": 1}),
        ("not logged in", 0, {}),
        ("guest", 1, {}),  # config siteguest
        ("deleted user", "gone", {}),
        ("user that does not exist", 987_654, {}),
    ],
)
def test_sessions_that_do_not_count(app, site, case, user, row):
    sid = moodle_session(site, user, **row)
    assert refused(exchange(app.test_client(), sid)), case


def test_suspended_and_nologin_accounts_get_nothing(app, site):
    suspended, nologin = moodle_session(site, "ben"), moodle_session(site, "cara")
    site.moodle._update("user", site.users["ben"], suspended=1)
    site.moodle._update("user", site.users["cara"], auth="nologin")
    assert refused(exchange(app.test_client(), suspended))
    assert refused(exchange(app.test_client(), nologin))


def test_forged_malformed_and_missing_cookies_get_nothing(app, site):
    moodle_session(site, "ana")
    for sid in (new_sid(), "short", "../../etc/passwd" + "a" * 20, "x" * 129, "a b" * 10):
        assert refused(exchange(app.test_client(), sid)), sid
    assert refused(app.test_client().post("/tracking/moodle-token"))


def test_the_site_sessiontimeout_decides_what_is_stale(app, site):
    site.moodle.config("sessiontimeout", "600")
    fresh = moodle_session(site, "ana", timemodified=NOW - 599)
    stale = moodle_session(site, "ben", timemodified=NOW - 601)
    assert token_user(app, exchange(app.test_client(), fresh)) == site.users["ana"]
    assert refused(exchange(app.test_client(), stale))


def test_a_browser_naming_someone_else_gets_nothing(app, site, client_as):
    ana = moodle_session(site, "ana")
    # The page says it is ben's, the cookie is ana's.
    assert refused(exchange(app.test_client(), ana, {"user": site.users["ben"]}))
    assert refused(exchange(app.test_client(), ana, {"user": "ana"}))
    assert exchange(app.test_client(), ana, {"user": "x" * 5000}).status_code == 413
    # Signed in to ManiReports as ben, with ana's Moodle session: whose time? Neither's.
    assert refused(exchange(client_as("ben"), ana))
    # Signed in to both as ana: fine.
    assert token_user(app, exchange(client_as("ana"), ana)) == site.users["ana"]


def test_guessing_session_ids_is_throttled_per_address(app, site):
    ana = moodle_session(site, "ana")
    guesser = {"REMOTE_ADDR": "203.0.113.9"}
    for _ in range(GUESS_LIMIT):
        assert refused(exchange(app.test_client(), new_sid(), **guesser))
    throttled = exchange(app.test_client(), ana, **guesser)  # even a real one, now
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    # Another address is not affected; visitors who are merely not logged in count for nothing.
    visitor = moodle_session(site, 0)
    for _ in range(GUESS_LIMIT + 5):
        assert refused(exchange(app.test_client(), visitor, REMOTE_ADDR="198.51.100.7"))
    ok = exchange(app.test_client(), ana, REMOTE_ADDR="198.51.100.7")
    assert token_user(app, ok) == site.users["ana"]


def test_disabled_tracking_and_foreign_origins_get_nothing(app, site):
    sid = moodle_session(site, "ana")
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(tracking_allowed_origins=(MOODLE,))
    client = app.test_client()
    client.set_cookie("MoodleSession", sid)
    evil = client.post("/tracking/moodle-token", headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "Access-Control-Allow-Origin" not in evil.headers
    ok = client.post("/tracking/moodle-token", headers={"Origin": MOODLE})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == MOODLE
    ctx.settings = ctx.settings.with_overrides(time_tracking_enabled=False)
    off = client.post("/tracking/moodle-token", headers={"Origin": MOODLE})
    assert off.status_code == 403 and off.get_json()["tracking"] is False


def test_a_site_without_a_readable_sessions_table_refuses_plainly(app, site):
    sid = moodle_session(site, "ana")
    with site.moodle.engine.begin() as conn:
        site.moodle.tables.sessions.drop(conn)
    assert refused(exchange(app.test_client(), sid))


def test_the_cookie_name_follows_the_site(app, site):
    """$CFG->sessioncookie = 'Prod' names the cookie MoodleSessionProd."""
    sid = moodle_session(site, "ana")
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(moodle_session_cookie="MoodleSessionProd")
    client = app.test_client()
    assert refused(exchange(client, sid))  # the plain name is someone else's cookie now
    client.set_cookie("MoodleSessionProd", sid)
    assert token_user(app, client.post("/tracking/moodle-token")) == site.users["ana"]


def test_an_old_session_row_is_stale_even_if_the_user_is_fine(app, site):
    sid = moodle_session(site, "ana", timecreated=NOW - 3 * DAY, timemodified=NOW - 2 * DAY)
    assert refused(exchange(app.test_client(), sid))


def test_the_guess_count_is_shared_by_every_web_process(app, site):
    """Another web process (same app DB) lets a known guesser make one miss of its own, which
    marks the address there; from then on it is refused there too."""
    ana = moodle_session(site, "ana")
    guesser = {"REMOTE_ADDR": "203.0.113.10"}
    for _ in range(GUESS_LIMIT):
        assert refused(exchange(app.test_client(), new_sid(), **guesser))
    other = create_app(app.extensions["manireports"].settings)
    other.extensions["manireports"].clock = lambda: NOW
    try:
        assert refused(exchange(other.test_client(), new_sid(), **guesser))
        assert exchange(other.test_client(), ana, **guesser).status_code == 429
        assert token_user(other, exchange(other.test_client(), ana)) == site.users["ana"]
    finally:
        other.extensions["manireports"].close()
