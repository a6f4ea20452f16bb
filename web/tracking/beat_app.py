"""The lean heartbeat endpoint: `POST /tracking/beat` as a small ASGI app (`manireports beat`).

A large site's learners send thousands of beats a second, and a beat needs none of what the
Flask app does per request (sessions, CSRF, templates, tenancy). This app answers only
`POST`/`OPTIONS /tracking/beat` and `GET /healthz`, on one event loop under uvicorn, with
the same checks and answers as the Flask route (web/tracking/beat_check.py), the same
enrolment cache (BeatScope) and the same grouping publisher (BeatPublisher, on this loop).
The reverse proxy sends `/tracking/beat` here and everything else to `manireports web`.

A beat whose enrolment answer is cached costs no thread; a cache miss runs its Moodle query
on a small thread pool, so a slow query holds up that beat alone, never the loop. Beats
answered 204 are published before the process exits on SIGTERM (uvicorn's lifespan
shutdown drains the publisher).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from common.analytics.beat_scope import NOT_CACHED, BeatScope
from common.analytics.heartbeats import SUBJECT
from common.bus import Bus
from common.metrics import (
    FAILURES,
    HEARTBEATS_ACCEPTED,
    REQUEST_SECONDS,
    exposition,
    token_matches,
)
from common.moodle import MoodleSource
from common.runtime import configure_logging
from common.settings import Settings, load_settings
from web.bus_client import BusUnavailable
from web.tracking.beat_check import MAX_BEAT_BYTES, Answer, BeatCall, BeatChecks
from web.tracking.publisher import BeatPublisher
from web.tracking.tokens import HeartbeatTokens

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BEAT_PATH = "/tracking/beat"
BEAT_ENDPOINT = "tracking.beat"  # the Flask route's endpoint name, as the metrics label it
LOOKUP_THREADS = 8  # concurrent Moodle queries for cache misses (the engine pool holds 15)
RECONNECT_AFTER_S = 1.0  # after a failed connect, beats get 503 at once for this long
DEFAULT_PORTS = {"http": ":80", "https": ":443"}
# How uvicorn serves the app (`manireports beat`, the bench, the tests): uvloop and the
# httptools parser are the C-speed halves of a beat's cost; the app reads X-Forwarded-* itself,
# as far as TRUSTED_PROXIES says (as the web tier does), so uvicorn must not rewrite them.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "lifespan": "on",
    "access_log": False,
    "proxy_headers": False,
    "server_header": False,
}


class BeatApp:
    """The ASGI app. One instance per process; the bus connects on this process's loop."""

    def __init__(self, settings: Settings, moodle: MoodleSource | None = None):
        self.settings = settings
        tokens = HeartbeatTokens(settings.secret_key, settings.heartbeat_token_ttl_s)
        self.checks = BeatChecks(
            settings.time_tracking_enabled, settings.tracking_allowed_origins, tokens
        )
        self.moodle = moodle or MoodleSource(settings.moodle_database_url, settings.moodle_prefix)
        self.scope = BeatScope(self.moodle)
        self.lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="beat-scope")
        self.bus: Bus | None = None
        self.publisher: BeatPublisher | None = None
        self._connecting: asyncio.Lock | None = None
        self._connect_failed_at = -RECONNECT_AFTER_S

    def now(self, headers: dict[bytes, bytes]) -> float:
        """The time a beat is stamped with (the bench pins it from a header)."""
        return time.time()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == BEAT_PATH and method == "POST":
            started = time.perf_counter()
            answer = await self._beat(scope, receive)
            _count(answer, method, time.perf_counter() - started)
        elif path == BEAT_PATH and method == "OPTIONS":
            headers = dict(scope["headers"])
            answer = self.checks.preflight(_origin(headers), self._host_url(scope, headers))
        elif path == "/healthz" and method in ("GET", "HEAD"):
            answer = await self._health()
        elif path == "/metrics" and method == "GET":
            answer = self._metrics(dict(scope["headers"]))
        elif path in (BEAT_PATH, "/healthz"):
            allow = "POST, OPTIONS" if path == BEAT_PATH else "GET, HEAD"
            answer = Answer(405, _json({"error": "method not allowed"}), (("Allow", allow),))
        else:
            answer = Answer(404, _json({"error": "not found"}))
        await _send(send, answer)

    async def _beat(self, scope: Scope, receive: Receive) -> Answer:
        headers = dict(scope["headers"])
        call = BeatCall(
            raw=await _body(receive),
            origin=_origin(headers),
            host_url=self._host_url(scope, headers),
            now=self.now(headers),
        )
        checked = self.checks.check(call)
        if isinstance(checked, Answer):
            return checked
        ids = (checked.userid, checked.courseid, checked.cmid, call.now)
        refused = self.scope.cached_refusal(*ids)
        if refused == NOT_CACHED:
            try:
                loop = asyncio.get_running_loop()
                refused = await loop.run_in_executor(self.lookups, self.scope.refusal, *ids)
            except Exception:  # noqa: BLE001 - the Moodle DB is away: the script retries
                log.exception("enrolment check failed")
                return self.checks.unavailable(call)
        problem = self.checks.scope_problem(call, checked, refused)
        if problem is not None:
            return problem
        try:
            publisher = self.publisher or await self._connect()
            await publisher.publish_acked(checked.payload())
        except BusUnavailable as exc:
            log.warning("heartbeat not published: %s", exc)
            return self.checks.unavailable(call)
        return self.checks.accepted(call)

    def _host_url(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        """This server's origin as the browser sees it, as Flask's `request.host_url` (the
        X-Forwarded-* of the last TRUSTED_PROXIES hops, as ProxyFix reads them)."""
        scheme = scope.get("scheme", "http")
        host = headers.get(b"host", b"").decode("latin-1")
        trusted = self.settings.trusted_proxies
        if trusted:
            scheme = _forwarded(headers.get(b"x-forwarded-proto"), trusted) or scheme
            host = _forwarded(headers.get(b"x-forwarded-host"), trusted) or host
        if not host:
            server = scope.get("server") or ("localhost", None)
            host = f"{server[0]}:{server[1]}" if server[1] else server[0]
        default = DEFAULT_PORTS.get(scheme)
        if default and host.endswith(default):
            host = host[: -len(default)]
        return f"{scheme}://{host}/"

    async def _connect(self) -> BeatPublisher:
        """The publisher, connecting the bus on this loop first (once; concurrent beats wait)."""
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.publisher is not None:
                return self.publisher
            url = self.settings.nats_url
            if not url:
                raise BusUnavailable("NATS_URL is not set")
            if time.monotonic() - self._connect_failed_at < RECONNECT_AFTER_S:
                raise BusUnavailable(f"cannot reach the bus at {url} (retrying shortly)")
            try:
                replicas = self.settings.nats_replicas  # as every process: streams keep theirs
                bus = await Bus.connect(url, "manireports-beat", replicas=replicas)
                await bus.ensure_streams()
            except Exception as exc:
                self._connect_failed_at = time.monotonic()
                raise BusUnavailable(f"cannot reach the bus at {url}: {exc}") from exc
            self.bus, self.publisher = bus, BeatPublisher.on_loop(bus, SUBJECT)
            return self.publisher

    async def _health(self) -> Answer:
        def moodle() -> None:
            with self.moodle.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        checks = {"bus": "ok" if self.bus and self.bus.nc.is_connected else "error: not connected"}
        try:
            await asyncio.get_running_loop().run_in_executor(self.lookups, moodle)
            checks["moodle"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health page
            checks["moodle"] = f"error: {str(exc).splitlines()[0][:200]}"
        healthy = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if healthy else "degraded", "checks": checks}
        return Answer(200 if healthy else 503, _json(body))

    def _metrics(self, headers: dict[bytes, bytes]) -> Answer:
        """This process's counters (common/metrics.py), as the web tier's /metrics: off
        without METRICS_TOKEN, and a scrape must send it. The queue gauges come from the web
        tier and the workers."""
        token = self.settings.metrics_token
        if not token:
            return Answer(404, _json({"error": "not found"}))
        given = headers.get(b"authorization", b"").decode("latin-1")
        if not token_matches(given, token):
            return Answer(401, _json({"error": "metrics token required"}),
                          (("WWW-Authenticate", "Bearer"),))  # fmt: skip
        return Answer(200, exposition(), (), CONTENT_TYPE_LATEST)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._connect()
                except BusUnavailable as exc:  # beats get 503 until the bus answers
                    log.warning("starting without the bus: %s", exc)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def close(self) -> None:
        """Publish every beat already answered 204, then let go of the bus and the pools."""
        if self.publisher is not None and not await self.publisher.drain():
            log.error("%d heartbeats were not acked before shutdown", self.publisher.pending())
        if self.bus is not None:
            await self.bus.close()
        self.lookups.shutdown(wait=False)
        self.moodle.dispose()


def from_env() -> BeatApp:
    """The app as `manireports beat` serves it (uvicorn's factory, one per worker process)."""
    configure_logging()  # a worker process of --workers starts with none
    return BeatApp(load_settings())


async def _body(receive: Receive) -> bytes:
    """The request body, read no further than one byte past what a beat may hold."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BEAT_BYTES or not message.get("more_body"):
            return b"".join(chunks)


def _origin(headers: dict[bytes, bytes]) -> str | None:
    origin = headers.get(b"origin")
    return origin.decode("latin-1") if origin is not None else None


def _forwarded(value: bytes | None, trusted: int) -> str | None:
    """The value the `trusted`-th proxy from us set (ProxyFix's reading)."""
    if value is None:
        return None
    values = [v.strip() for v in value.decode("latin-1").split(",")]
    return values[-trusted] if len(values) >= trusted and values[-trusted] else None


def _count(answer: Answer, method: str, seconds: float) -> None:
    """The web tier's series for the beat route (its endpoint name), so a dashboard sums both."""
    REQUEST_SECONDS.labels(BEAT_ENDPOINT, method).observe(seconds)
    if 200 <= answer.status < 300:
        HEARTBEATS_ACCEPTED.inc()
    elif answer.status >= 500:
        FAILURES.labels("beat", "http").inc()


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode() + b"\n"


async def _send(send: Send, answer: Answer) -> None:
    headers = [(name.lower().encode(), value.encode("latin-1")) for name, value in answer.headers]
    if answer.content_type:
        headers.append((b"content-type", answer.content_type.encode()))
    if answer.status != 204:  # a 204 has no body and says no length (RFC 9110 §8.6)
        headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
