"""`/metrics`: the web replica's Prometheus figures, and the hooks that count its requests.

Off unless METRICS_TOKEN is set, then only for a scrape sending it as a bearer token: the
figures hold no tenant data (see common/metrics.py), but queue depths and request rates are
the operator's business, and a loopback check would let through everything a reverse proxy
on the same host forwards.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, abort, current_app, g, request

from common.bus_figures import stream_figures
from common.metrics import (
    CONTENT_TYPE_LATEST,
    FAILURES,
    HEARTBEATS_ACCEPTED,
    REQUEST_SECONDS,
    exposition,
    queue_registry,
    token_matches,
)
from web.auth.guards import Tenancy, open_to, web_context

bp = Blueprint("metrics", __name__)

EXTENSION = "manireports.metrics"
# The beat route: a 2xx answer is one beat accepted (one beat per request).
BEAT_ENDPOINT = "tracking.beat"


@bp.get("/metrics")
@open_to(Tenancy.SIGNED)  # a scraper proven by METRICS_TOKEN; counts only, no tenant data
def metrics():  # type: ignore[no-untyped-def]
    token = web_context().settings.metrics_token
    if not token:
        abort(404)
    if not token_matches(request.headers.get("Authorization"), token):
        return Response("metrics token required\n", 401, {"WWW-Authenticate": "Bearer"},
                        content_type="text/plain")  # fmt: skip
    body = exposition(current_app.extensions[EXTENSION])
    return Response(body, 200, content_type=CONTENT_TYPE_LATEST)


def install_metrics(app: Flask) -> None:
    """The request hooks (latency, 5xx failures, accepted beats) and this app's queue gauges,
    read through its own bus connection."""
    bus_client = app.extensions["manireports"].bus_client
    app.extensions[EXTENSION] = queue_registry(lambda: bus_client.run(stream_figures, timeout_s=5))

    @app.before_request
    def _start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        endpoint = request.endpoint or "unmatched"
        if started is not None:
            REQUEST_SECONDS.labels(endpoint, request.method).observe(time.perf_counter() - started)
        if response.status_code >= 500:
            FAILURES.labels("web", "http").inc()
        elif endpoint == BEAT_ENDPOINT and 200 <= response.status_code < 300:
            HEARTBEATS_ACCEPTED.inc()
        return response
