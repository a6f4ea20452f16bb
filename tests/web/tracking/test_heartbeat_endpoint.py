"""The heartbeat endpoint: token in, beat on the bus, 204 out; nothing else gets through."""

import json

from tests.factories.sites import NOW
from tests.web.conftest import csrf_token
from tests.web.tracking.conftest import stored_beats
from web.tracking.tokens import HeartbeatTokens

MOODLE = "https://moodle.example.com"


def token_for(client):
    response = client.get("/tracking/token")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["token"]


def post_beat(client, body, **headers):
    return client.post("/tracking/beat", data=json.dumps(body),
                       content_type="text/plain", headers=headers)  # fmt: skip


def test_a_beat_with_a_valid_token_is_published_with_the_token_user_and_server_time(
    app, site, client_as, nats_server
):
    client = client_as("ana")
    token = token_for(client)
    course = site.courses["Fire Safety"]
    cm = site.moodle.module(course).cm_id
    # Another user's id in the body is ignored: only the token names the user.
    anonymous = app.test_client()
    body = {"token": token, "course": course, "cm": cm, "id": "beat-0001", "u": site.users["ben"]}
    response = post_beat(anonymous, body)
    assert response.status_code == 204
    assert stored_beats(nats_server.url, expect=1) == [
        {"id": "beat-0001", "u": site.users["ana"], "c": course, "m": cm, "t": NOW}
    ]


def test_forged_expired_and_missing_tokens_are_refused(app, site, client_as, nats_server):
    token = token_for(client_as("ana"))
    version, user, expires, signature = token.split(".")
    forged = ".".join([version, str(site.users["ben"]), expires, signature])
    client = app.test_client()
    secret = app.extensions["manireports"].settings.secret_key
    expired, _ = HeartbeatTokens(secret, ttl_s=300).issue(site.users["ana"], NOW - 301)
    wrong_key, _ = HeartbeatTokens("another-secret", ttl_s=300).issue(site.users["ana"], NOW)
    for bad, reason in ((forged, "signature"), (expired, "expired"), (wrong_key, "signature"),
                        ("v1.2.3", "malformed"), (None, "missing")):  # fmt: skip
        response = post_beat(client, {"token": bad, "course": 5, "id": "beat-0002"})
        assert response.status_code == 401
        assert response.get_json()["field"] == "token" and reason in response.get_json()["error"]
    assert stored_beats(nats_server.url) == []


def test_bad_fields_are_400_with_the_field(app, client_as, nats_server):
    token = token_for(client_as("ana"))
    client = app.test_client()
    cases = [
        ({"course": 0, "id": "beat-0003"}, "course"),
        ({"course": "5", "id": "beat-0003"}, "course"),
        ({"course": 5, "cm": -1, "id": "beat-0003"}, "cm"),
        ({"course": 5, "id": "short"}, "id"),
        ({"course": 5, "id": "has spaces in it"}, "id"),
    ]
    for body, field in cases:
        response = post_beat(client, {"token": token, **body})
        assert response.status_code == 400, body
        assert response.get_json()["field"] == field
    assert client.post("/tracking/beat", data="not json").status_code == 400
    assert client.post("/tracking/beat", data="[1]").status_code == 400
    assert post_beat(client, {"token": token, "course": 5, "id": "x" * 2000}).status_code == 413
    assert stored_beats(nats_server.url) == []


def test_tokens_need_a_live_session(app, client_as):
    response = app.test_client().get("/tracking/token")
    assert response.status_code == 401
    client = client_as("ana")
    token_for(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/dashboards/")})
    response = client.get("/tracking/token")
    assert response.status_code == 401
    assert response.get_json()["error"] == "sign in to ManiReports first"


def test_disabled_tracking_refuses_tokens_and_beats(app, client_as, nats_server):
    client = client_as("ana")
    token = token_for(client)
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(time_tracking_enabled=False)
    refused = post_beat(app.test_client(), {"token": token, "course": 5, "id": "beat-0004"})
    assert refused.status_code == 403 and refused.get_json()["tracking"] is False
    token_response = client.get("/tracking/token")
    assert token_response.status_code == 403 and token_response.get_json()["tracking"] is False
    assert stored_beats(nats_server.url) == []


def test_only_allowed_moodle_origins_get_cors_answers(app, site, client_as, nats_server):
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(tracking_allowed_origins=(MOODLE,))
    client = client_as("ana")
    response = client.get("/tracking/token", headers={"Origin": MOODLE})
    assert response.headers["Access-Control-Allow-Origin"] == MOODLE
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    token = response.get_json()["token"]
    course = site.courses["Fire Safety"]
    ok = post_beat(client, {"token": token, "course": course, "id": "beat-0005"}, Origin=MOODLE)
    assert ok.status_code == 204 and ok.headers["Access-Control-Allow-Origin"] == MOODLE
    evil = post_beat(client, {"token": token, "course": course, "id": "beat-0006"},
                     Origin="https://evil.example")  # fmt: skip
    assert evil.status_code == 403 and "Access-Control-Allow-Origin" not in evil.headers
    assert client.get("/tracking/token", headers={"Origin": "https://evil.example"}).status_code \
        == 403  # fmt: skip
    preflight = client.options("/tracking/beat", headers={"Origin": MOODLE})
    assert (
        preflight.status_code == 204 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    )
    assert [beat["id"] for beat in stored_beats(nats_server.url, expect=1)] == ["beat-0005"]


def test_the_snippet_page_is_for_admins(app, client_as):
    page = client_as("admin").get("/tracking/")
    assert page.status_code == 200
    assert "/static/js/heartbeat.js" in page.get_data(as_text=True)
    assert client_as("mgr_a").get("/tracking/").status_code == 403
    script = app.test_client().get("/static/js/heartbeat.js")
    assert script.status_code == 200 and b"visibilityState" in script.data
    script.close()
