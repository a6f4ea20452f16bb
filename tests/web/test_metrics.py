"""`/metrics` on the web tier: off without METRICS_TOKEN, a bearer token to scrape, and the
named series counting a known workload (beats, requests, 5xx, queue depths)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from common.bus import Bus, ConsumerSpec, command_subject
from common.migrate import upgrade
from common.nats_server import EmbeddedNatsServer, NatsServerError
from common.settings import SettingsError
from tests.factories.sites import NOW, Site
from tests.metrics_text import samples, value
from tests.support import make_settings
from tests.web.tracking.conftest import stored_beats
from web.app import create_app

TOKEN = "scrape-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    """A server of this test's own: its queue depths are this test's alone."""
    try:
        server = EmbeddedNatsServer(tmp_path / "nats").start()
    except (NatsServerError, OSError) as exc:
        pytest.skip(f"cannot run the bundled nats-server: {exc}")
    yield server
    server.stop()


@pytest.fixture
def app(site: Site, tmp_path: Path, nats_server: EmbeddedNatsServer) -> Iterator[Flask]:
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url,
                             METRICS_TOKEN=TOKEN)  # fmt: skip
    upgrade(settings.database_url)
    application = create_app(settings)
    application.extensions["manireports"].clock = lambda: NOW
    yield application
    application.extensions["manireports"].close()


def scrape(app: Flask):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    return samples(response.get_data(as_text=True))


@pytest.mark.parametrize("raw", ["short", "has spaces in the token"])
def test_a_weak_metrics_token_is_refused_by_name(tmp_path: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        make_settings(tmp_path, METRICS_TOKEN=raw)


def test_metrics_is_off_without_a_token(app: Flask) -> None:
    settings = app.extensions["manireports"].settings.with_overrides(metrics_token=None)
    tokenless = create_app(settings)
    try:
        assert tokenless.test_client().get("/metrics", headers=AUTH).status_code == 404
    finally:
        tokenless.extensions["manireports"].close()


def test_a_scrape_must_send_the_token(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 200
    answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    text = answer.get_data(as_text=True)
    for series in ("manireports_queue_depth", "manireports_heartbeats_accepted_total",
                   "manireports_http_request_duration_seconds_bucket"):  # fmt: skip
        assert series in text
    # Counts only: no company, user or path in any label.
    assert "/metrics" not in text and "Acme" not in text


def post_beat(client, token: str, course: int, beat_id: str):  # type: ignore[no-untyped-def]
    body = {"token": token, "course": course, "id": beat_id}
    return client.post("/tracking/beat", data=json.dumps(body), content_type="text/plain")


def test_beats_and_request_latency_after_a_known_workload(
    app: Flask, site: Site, client_as, nats_server
) -> None:  # type: ignore[no-untyped-def]
    before = scrape(app)
    token = client_as("ana").get("/tracking/token").get_json()["token"]
    course = site.courses["Fire Safety"]
    client = app.test_client()
    accepted = [post_beat(client, token, course, f"beat-metrics-{n:03d}") for n in range(7)]
    refused = [post_beat(client, "v1.forged.0.sig", course, "beat-metrics-900"),
               post_beat(client, token, 0, "beat-metrics-901")]  # fmt: skip
    assert [r.status_code for r in accepted] == [204] * 7
    assert [r.status_code for r in refused] == [401, 400]
    stored_beats(nats_server.url, expect=7)
    after = scrape(app)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("manireports_heartbeats_accepted_total") == 7
    beat = {"endpoint": "tracking.beat", "method": "POST"}
    assert delta("manireports_http_request_duration_seconds_count", **beat) == 9
    assert delta("manireports_http_request_duration_seconds_bucket", le="+Inf", **beat) == 9
    assert delta("manireports_http_request_duration_seconds_sum", **beat) > 0


def test_queue_gauges_equal_the_streams_figures(app: Flask, nats_server) -> None:  # type: ignore[no-untyped-def]
    spec = ConsumerSpec("COMMANDS", "metrics-probe", command_subject("nobody", ">"), ack_wait_s=30)

    async def workload() -> tuple[int, int]:
        bus = await Bus.connect(nats_server.url, "test")
        try:
            await bus.ensure_streams()
            for n in range(5):
                await bus.publish(command_subject("nobody", "x"), {"n": n})
            sub = await bus.pull(spec)
            await sub.fetch(2, timeout=2)  # taken, not acked
            info = await bus.js.stream_info("COMMANDS")
            heartbeats = await bus.js.stream_info("HEARTBEATS")
            return info.state.messages, heartbeats.state.messages
        finally:
            await bus.close()

    commands, heartbeats = asyncio.run(workload())
    found = scrape(app)
    assert commands == 5
    assert value(found, "manireports_queue_depth", stream="COMMANDS") == 5
    assert value(found, "manireports_queue_depth", stream="HEARTBEATS") == heartbeats
    probe = {"stream": "COMMANDS", "consumer": "metrics-probe"}
    assert value(found, "manireports_consumer_pending", **probe) == 3
    assert value(found, "manireports_consumer_ack_pending", **probe) == 2
    assert value(found, "manireports_consumer_redelivered", **probe) == 0
    # The KV buckets are state, not queues.
    assert not any(name == "manireports_queue_depth" and dict(labels)["stream"].startswith("KV_")
                   for name, labels in found)  # fmt: skip


def test_a_5xx_answer_counts_as_a_web_failure(app: Flask) -> None:
    settings = app.extensions["manireports"].settings
    broken = create_app(settings)

    @broken.get("/broken-for-the-test")
    def broken_view():  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    try:
        before = scrape(broken)
        assert broken.test_client().get("/broken-for-the-test").status_code == 500
        after = scrape(broken)
    finally:
        broken.extensions["manireports"].close()
    failures = {"service": "web", "kind": "http"}
    assert (
        value(after, "manireports_failures_total", **failures)
        - value(before, "manireports_failures_total", **failures)
        == 1
    )
