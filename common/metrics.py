"""Prometheus figures (issue 15): the series every process exports at /metrics.

Counts and timings only — no company, user, address or URL is ever a label, so the figures
say nothing about any tenant. The series:

- `manireports_queue_depth{stream}` (gauge): messages stored in the stream (on a work queue,
  what is still to be done); `manireports_consumer_pending`, `_ack_pending` and
  `_redelivered{stream,consumer}` (gauges): each durable consumer's backlog. Read from
  JetStream when scraped.
- `manireports_mail_messages_total{provider,outcome}` (counter): each recipient a mailer
  handed to a provider, by its outcome (sent, failed, retry, skipped, deferred); the send
  rate is `rate(manireports_mail_messages_total{outcome="sent"}[1m])`.
- `manireports_failures_total{service,kind}` (counter): a worker's message that failed
  (kind="message") and a web answer of 5xx (kind="http").
- `manireports_messages_processed_total{service}` (counter): messages a worker acked.
- `manireports_heartbeats_accepted_total` (counter): beats the web tier accepted;
  `manireports_heartbeats_applied_total` (counter): beats the aggregator merged.
- `manireports_http_request_duration_seconds{endpoint,method}` (histogram): web requests,
  by Flask endpoint name (never the path, which may hold ids).

Counters live in this process's one registry; the queue gauges are a collector per bus, so a
test with several apps in one process reads its own bus.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from common.bus_figures import StreamFigures

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()

MAIL_MESSAGES = Counter(
    "manireports_mail_messages",
    "Recipients handed to a mail provider, by provider and outcome.",
    ["provider", "outcome"],
    registry=REGISTRY,
)
FAILURES = Counter(
    "manireports_failures",
    "Failed worker messages (kind=message) and web answers of 5xx (kind=http).",
    ["service", "kind"],
    registry=REGISTRY,
)
PROCESSED = Counter(
    "manireports_messages_processed",
    "Messages a worker handled and acknowledged.",
    ["service"],
    registry=REGISTRY,
)
HEARTBEATS_ACCEPTED = Counter(
    "manireports_heartbeats_accepted",
    "Heartbeats the web tier accepted (answered 2xx) and queued for the bus.",
    registry=REGISTRY,
)
HEARTBEATS_APPLIED = Counter(
    "manireports_heartbeats_applied",
    "Heartbeats the aggregator merged into time sessions.",
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "manireports_http_request_duration_seconds",
    "Web request latency, by Flask endpoint and method.",
    ["endpoint", "method"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

FiguresSource = Callable[[], "list[StreamFigures]"]


class QueueCollector(Collector):
    """The queue gauges, read through `source` at each scrape; nothing if the bus is away
    (a scrape must not fail because NATS is restarting)."""

    def __init__(self, source: FiguresSource):
        self.source = source

    def collect(self) -> Iterable[Metric]:
        try:
            figures = self.source()
        except Exception as exc:  # noqa: BLE001 - reported in the log, not to the scraper
            log.warning("metrics: cannot read the queues: %s", exc)
            return []
        depth = GaugeMetricFamily(
            "manireports_queue_depth", "Messages stored in the stream.", labels=["stream"]
        )
        families = {
            "pending": "Messages not yet delivered to the consumer (num_pending).",
            "ack_pending": "Messages delivered and not yet acknowledged (num_ack_pending).",
            "redelivered": "Messages delivered more than once, unacknowledged (num_redelivered).",
        }
        per_consumer = {
            key: GaugeMetricFamily(
                f"manireports_consumer_{key}", text, labels=["stream", "consumer"]
            )
            for key, text in families.items()
        }
        for stream in figures:
            depth.add_metric([stream.name], stream.messages)
            for consumer in stream.consumers:
                labels = [stream.name, consumer.name]
                per_consumer["pending"].add_metric(labels, consumer.pending)
                per_consumer["ack_pending"].add_metric(labels, consumer.ack_pending)
                per_consumer["redelivered"].add_metric(labels, consumer.redelivered)
        return [depth, *per_consumer.values()]


def queue_registry(source: FiguresSource) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QueueCollector(source))
    return registry


def on_loop(loop: asyncio.AbstractEventLoop, bus_source: Callable[[], Any]) -> FiguresSource:
    """A figures source for a scrape thread, read on the asyncio loop the bus lives on."""
    from common.bus_figures import stream_figures

    def read() -> list[StreamFigures]:
        future: Future[list[StreamFigures]] = asyncio.run_coroutine_threadsafe(
            stream_figures(bus_source()), loop
        )
        return future.result(timeout=5)

    return read


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text format of every registry given (the process's counters first)."""
    return b"".join(generate_latest(r) for r in (REGISTRY, *registries))


def token_matches(header: str | None, token: str | None) -> bool:
    """`Authorization: Bearer <METRICS_TOKEN>`; without a token set, there is nothing to match."""
    if not token:
        return False
    given = (header or "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


def count_mail_outcomes(provider: str, outcomes: Sequence[Any]) -> None:
    for outcome in outcomes:
        MAIL_MESSAGES.labels(provider, outcome.status).inc()


# -- the workers' listener ----------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("metrics: " + format, *args)


class MetricsListener:
    """A small HTTP server on a daemon thread answering GET /metrics (a worker's figures).
    With METRICS_TOKEN set, a scrape must send it as a bearer token."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, token: str | None):
        self.registry = registry
        self.token = token
        self.server: WSGIServer = make_server(host, port, self._app, handler_class=_Quiet)
        self.port = int(self.server.server_port)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="metrics")  # fmt: skip

    def start(self) -> MetricsListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") != "GET":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return iter([b"not found\n"])
        if self.token and not token_matches(environ.get("HTTP_AUTHORIZATION"), self.token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", "Bearer")])  # fmt: skip
            return iter([b"metrics token required\n"])
        body = exposition(self.registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(body)))])  # fmt: skip
        return iter([body])
