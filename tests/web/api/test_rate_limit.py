"""Each token may make API_RATE_LIMIT_PER_MINUTE requests a minute; past it, 429 + Retry-After."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from common.access.attempt_counters import AttemptCounters
from common.db import make_engine
from common.settings import SettingsError, load_settings
from tests.web.api.conftest import bearer
from web.api.rate_limit import EXTENSION, RateLimiter

REPORTS = "/api/v1/reports"
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app) -> Clock:  # type: ignore[no-untyped-def]
    """The limiter's clock, pinned; the limit set to 3 a minute."""
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(api_rate_limit_per_minute=3)
    pinned = Clock()
    app.extensions[EXTENSION].clock = pinned
    return pinned


def test_past_the_limit_is_429_with_retry_after(app, token_for, clock):
    client, headers = app.test_client(), bearer(token_for("mgr_a"))
    for _ in range(3):
        assert client.get(REPORTS, headers=headers).status_code == 200
    clock.now += 20
    refused = client.get(REPORTS, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "40"
    assert refused.is_json and "3 requests a minute" in refused.get_json()["error"]


def test_other_tokens_are_counted_apart(app, site, token_for, clock):
    client = app.test_client()
    first, second = bearer(token_for("mgr_a")), bearer(token_for("mgr_a"))
    for _ in range(3):
        client.get(REPORTS, headers=first)
    assert client.get(REPORTS, headers=first).status_code == 429
    assert client.get(REPORTS, headers=second).status_code == 200
    moodle = "0123456789abcdef0123456789abcdef"
    site.moodle.enable_web_services()
    site.moodle.external_token(site.users["mgr_a"], token=moodle)
    assert client.get(REPORTS, headers=bearer(moodle)).status_code == 200


def test_the_window_resets_and_refusals_are_not_counted(app, token_for, clock):
    client, headers = app.test_client(), bearer(token_for("mgr_a"))
    for _ in range(3):
        client.get(REPORTS, headers=headers)
    for _ in range(5):
        assert client.get(REPORTS, headers=headers).status_code == 429
    clock.now += 59
    assert client.get(REPORTS, headers=headers).headers["Retry-After"] == "1"
    clock.now += 1
    for _ in range(3):
        assert client.get(REPORTS, headers=headers).status_code == 200
    assert client.get(REPORTS, headers=headers).status_code == 429


def test_a_moodle_token_is_limited_too(app, site, clock):
    moodle = "0123456789abcdef0123456789abcdef"
    site.moodle.enable_web_services()
    site.moodle.external_token(site.users["mgr_a"], token=moodle)
    client = app.test_client()
    statuses = [client.get(REPORTS, headers=bearer(moodle)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_zero_turns_the_limit_off(app, token_for, clock):
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(api_rate_limit_per_minute=0)
    client, headers = app.test_client(), bearer(token_for("mgr_a"))
    assert all(client.get(REPORTS, headers=headers).status_code == 200 for _ in range(6))


def test_the_setting(tmp_path):
    base = {"MANIREPORTS_INSTANCE": str(tmp_path), "SECRET_KEY": "k" * 40}
    assert load_settings(base).api_rate_limit_per_minute == 120
    custom = load_settings({**base, "API_RATE_LIMIT_PER_MINUTE": "600"})
    assert custom.api_rate_limit_per_minute == 600
    with pytest.raises(SettingsError, match="API_RATE_LIMIT_PER_MINUTE"):
        load_settings({**base, "API_RATE_LIMIT_PER_MINUTE": "-1"})


def test_concurrent_requests_never_pass_the_limit(app_db_url):
    """Every web process counts in the same row: 24 requests at once, 5 admitted."""
    engine = make_engine(app_db_url)
    try:
        counters = AttemptCounters(engine)
        limiter = RateLimiter(clock=lambda: START)
        with ThreadPoolExecutor(max_workers=8) as pool:
            waits = list(pool.map(lambda _: limiter.admit(counters, "token:1", 5), range(24)))
        assert waits.count(None) == 5
        assert all(w == 60 for w in waits if w is not None)
    finally:
        engine.dispose()
