"""Heartbeat tokens where the site keeps sessions in Redis (`\\core\\session\\redis`): no row in
the sessions table, the session read from the handler's own store as Moodle writes it — the 4.5
hash at `<prefix>session_<sid>`, or older handlers' session data at `<prefix><sid>` (through
phpredis's PHP serializer, maybe gzip-compressed). Skipped when no Redis answers on 6379."""

import gzip
import json
import uuid

import pytest

from common.moodle.demo.sessions import (
    new_sid,
    php_serialize,
    redis_hash_fields,
    session_data,
    sign_in,
)
from common.nats_server import free_port
from tests.factories.sites import NOW

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        pytest.skip("no Redis at 127.0.0.1:6379")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client):
    """A key prefix of this test's own ($CFG->session_redis_prefix); its keys go afterwards."""
    value = f"mrtest_{uuid.uuid4().hex[:8]}_"
    yield value
    keys = list(redis_client.scan_iter(f"{value}*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def redis_app(app, site, prefix):
    site.moodle.config("session_handler_class", "\\core\\session\\redis")
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(
        moodle_session_redis_url=REDIS_URL, moodle_session_redis_prefix=prefix
    )
    return app


def hash_session(client, prefix, user_id, **fields):
    sid = new_sid()
    values = redis_hash_fields(sid, user_id, NOW)
    values.update({name: php_serialize(value) for name, value in fields.items()})
    client.hset(f"{prefix}session_{sid}", mapping=values)
    return sid


def exchange(app, sid):
    client = app.test_client()
    client.set_cookie("MoodleSession", sid)
    return client.post("/tracking/moodle-token")


def token_user(app, response):
    assert response.status_code == 200, response.get_data(as_text=True)
    from web.tracking.routes import tracking

    with app.test_request_context():
        return tracking().tokens.verify(response.get_json()["token"], NOW)


def refused(response):
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json() == {"error": "sign in to Moodle first"}
    return True


def test_moodle_45_redis_sessions_count_for_their_own_user(redis_app, site, redis_client, prefix):
    sid = hash_session(redis_client, prefix, site.users["ana"])
    before = {k: redis_client.hgetall(k) for k in redis_client.scan_iter(f"{prefix}*")}
    ttl = redis_client.ttl(f"{prefix}session_{sid}")
    assert token_user(redis_app, exchange(redis_app, sid)) == site.users["ana"]
    after = {k: redis_client.hgetall(k) for k in redis_client.scan_iter(f"{prefix}*")}
    assert after == before and redis_client.ttl(f"{prefix}session_{sid}") == ttl, "read only"
    # userid stored as a string (update_session with a DB record) reads the same.
    as_text = hash_session(redis_client, prefix, 0, userid=str(site.users["ben"]))
    assert token_user(redis_app, exchange(redis_app, as_text)) == site.users["ben"]


@pytest.mark.parametrize(
    ("case", "user", "fields"),
    [
        ("expired", "ana", {"timemodified": NOW - 8 * 3600 - 1}),
        ("ended", "ana", {"state": "1"}),
        ("not logged in", 0, {}),
        ("guest", 1, {}),
        ("deleted user", "gone", {}),
    ],
)
def test_redis_sessions_that_do_not_count(redis_app, site, redis_client, prefix, case, user,
                                          fields):  # fmt: skip
    user_id = site.users[user] if isinstance(user, str) else user
    sid = hash_session(redis_client, prefix, user_id, **fields)
    assert refused(exchange(redis_app, sid)), case


def test_older_redis_handlers_session_data(redis_app, site, redis_client, prefix):
    plain, zipped, visitor = new_sid(), new_sid(), new_sid()
    redis_client.set(f"{prefix}{plain}", php_serialize(session_data(site.users["ana"])))
    redis_client.set(
        f"{prefix}{zipped}", php_serialize(gzip.compress(session_data(site.users["ben"])))
    )
    redis_client.set(f"{prefix}{visitor}", php_serialize(session_data(0)))
    assert token_user(redis_app, exchange(redis_app, plain)) == site.users["ana"]
    assert token_user(redis_app, exchange(redis_app, zipped)) == site.users["ben"]
    assert refused(exchange(redis_app, visitor))


def test_what_moodle_would_not_write_counts_for_nothing(redis_app, site, redis_client, prefix):
    forged_object = new_sid()
    payload = b'USER|O:9:"Exploiter":1:{s:2:"id";s:1:"2";}'
    redis_client.set(f"{prefix}{forged_object}", php_serialize(payload))
    wrong_type = new_sid()
    redis_client.rpush(f"{prefix}session_{wrong_type}", "x")
    garbage = new_sid()
    redis_client.set(f"{prefix}{garbage}", b"\x00\xff" * 50)
    other_prefix = new_sid()
    redis_client.hset(f"not{prefix}session_{other_prefix}",
                      mapping=redis_hash_fields(other_prefix, site.users["ana"], NOW))  # fmt: skip
    try:
        for sid in (forged_object, wrong_type, garbage, other_prefix, new_sid()):
            assert refused(exchange(redis_app, sid)), sid
    finally:
        redis_client.delete(f"not{prefix}session_{other_prefix}")


def test_a_row_in_the_sessions_table_still_decides_first(redis_app, site, redis_client, prefix):
    """Moodle ≤ 4.4 keeps a row whatever the handler: an ended row is not overruled by Redis."""
    sid = sign_in(site.moodle.engine, site.users["ana"], NOW, state=1)
    redis_client.hset(f"{prefix}session_{sid}",
                      mapping=redis_hash_fields(sid, site.users["ana"], NOW))  # fmt: skip
    assert refused(exchange(redis_app, sid))


def test_the_database_handler_never_looks_in_redis(app, site, redis_client, prefix):
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(
        moodle_session_redis_url=REDIS_URL, moodle_session_redis_prefix=prefix
    )
    sid = hash_session(redis_client, prefix, site.users["ana"])
    assert refused(exchange(app, sid))


def test_redis_away_is_try_again_later_not_a_token(app, site, prefix):
    site.moodle.config("session_handler_class", "\\core\\session\\redis")
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(
        moodle_session_redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    response = exchange(app, new_sid())
    assert response.status_code == 503 and response.get_json()["error"] == "try again later"
    page = app.test_client()
    assert page.get("/tracking/moodle-token").status_code == 405
    assert json.loads(response.get_data()) == {"error": "try again later"}
