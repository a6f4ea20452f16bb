"""The heartbeat endpoint's checks and answers, in one place and free of any web framework.

Two servers answer `POST /tracking/beat`: the Flask route (web/tracking/routes.py, for small
sites) and the lean ASGI app (web/tracking/beat_app.py, `manireports beat`, for the
thousands of beats a second of a large one). Both hand this module the request's raw body,
its Origin and the server's own origin, and get back either a Beat to publish or the Answer
to send — status, JSON body and CORS headers — so the two cannot answer differently.

The enrolment check is left to the caller (`scope_problem` turns its verdict into the
answer): the Flask route asks BeatScope on its request thread, the lean app first asks the
cache alone and goes to a thread only when a query is needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.analytics.heartbeats import Beat, InvalidBeat, positive_id
from web.tracking.tokens import HeartbeatTokens, TokenRejected

BEAT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_BEAT_BYTES = 1024
PREFLIGHT_HEADERS = (
    ("Access-Control-Allow-Methods", "POST"),
    ("Access-Control-Allow-Headers", "Content-Type"),
    ("Access-Control-Max-Age", "86400"),
)
JSON_TYPE = "application/json"

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Answer:
    """What to send: a status, a JSON body (empty for 204) and the headers that go with it."""

    status: int
    body: bytes = b""
    headers: Headers = ()
    media_type: str | None = None  # JSON unless said (the lean app's /metrics is text)

    @property
    def content_type(self) -> str | None:
        return self.media_type or (JSON_TYPE if self.body else None)


@dataclass(frozen=True)
class BeatCall:
    """The parts of a beat request the checks read."""

    raw: bytes
    origin: str | None  # the Origin header; None when absent (not a browser call)
    host_url: str  # this server's own origin as the browser sees it, e.g. https://lms.example
    now: float


def allowed_origin(origin: str | None, host_url: str, allowed: Sequence[str]) -> str | None:
    """The request's Origin if it may call us cross-origin; None if it may not."""
    if origin is None:
        return None
    if origin in allowed or (not allowed and origin == host_url.rstrip("/")):
        return origin
    return None


def origin_refused(origin: str | None, host_url: str, allowed: Sequence[str]) -> bool:
    """A browser call from an origin that is not allowed (no Origin: not a browser call)."""
    return origin is not None and allowed_origin(origin, host_url, allowed) is None


def cors_headers(
    origin: str | None, host_url: str, allowed: Sequence[str], *, credentials: bool
) -> Headers:
    """The CORS headers for an answer to `origin` (none when it is not allowed)."""
    granted = allowed_origin(origin, host_url, allowed)
    if not granted:
        return ()
    headers: Headers = (("Access-Control-Allow-Origin", granted), ("Vary", "Origin"))
    if credentials:
        headers += (("Access-Control-Allow-Credentials", "true"),)
    return headers


def problem_body(error: str, field: str | None = None, **extra: Any) -> bytes:
    """The JSON of a refusal: `{"error": …, "field": …}` and any extra keys."""
    body: dict[str, Any] = {"error": error, **extra}
    if field:
        body["field"] = field
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode() + b"\n"


class BeatChecks:
    """The checks of one deployment's settings: is tracking on, which origins may post, and
    the token signer. `check` does everything up to the enrolment check."""

    def __init__(self, enabled: bool, allowed_origins: Sequence[str], tokens: HeartbeatTokens):
        self.enabled = enabled
        self.allowed_origins = tuple(allowed_origins)
        self.tokens = tokens

    def _answer(self, call: BeatCall, status: int, body: bytes = b"") -> Answer:
        cors = cors_headers(call.origin, call.host_url, self.allowed_origins, credentials=False)
        return Answer(status, body, cors)

    def problem(self, call: BeatCall, status: int, error: str, field: str | None = None,
                **extra: Any) -> Answer:  # fmt: skip
        return self._answer(call, status, problem_body(error, field, **extra))

    def preflight(self, origin: str | None, host_url: str) -> Answer:
        cors = cors_headers(origin, host_url, self.allowed_origins, credentials=False)
        return Answer(204, b"", PREFLIGHT_HEADERS + cors)

    def check(self, call: BeatCall) -> Beat | Answer:
        """The beat to publish, or the answer that refuses it (before the enrolment check)."""
        if not self.enabled:
            return self.problem(call, 403, "time tracking is disabled", tracking=False)
        if origin_refused(call.origin, call.host_url, self.allowed_origins):
            # No CORS headers: the page that sent it may not read the answer.
            body = problem_body("this origin may not send heartbeats", "Origin")
            return Answer(403, body)
        # The script posts text/plain to stay a CORS "simple request" (no preflight per beat).
        if len(call.raw) > MAX_BEAT_BYTES:
            return self.problem(call, 413, "beat too large")
        try:
            body = json.loads(call.raw)
        except (ValueError, RecursionError):
            return self.problem(call, 400, "body must be a JSON object")
        if not isinstance(body, dict):
            return self.problem(call, 400, "body must be a JSON object")
        try:
            user_id = self.tokens.verify(body.get("token"), call.now)
        except TokenRejected as exc:
            return self.problem(call, 401, str(exc), "token")
        beat_id = body.get("id")
        if not isinstance(beat_id, str) or not BEAT_ID.match(beat_id):
            return self.problem(call, 400, "8-64 letters, digits, - or _", "id")
        try:
            return Beat(
                id=beat_id,
                userid=user_id,
                courseid=positive_id(body.get("course"), "course"),
                cmid=positive_id(body.get("cm", 0), "cm", allow_zero=True),
                time=int(call.now),
            )
        except InvalidBeat as exc:
            field, _, reason = str(exc).partition(": ")
            return self.problem(call, 400, reason, field)

    def scope_problem(self, call: BeatCall, beat: Beat, refused: str | None) -> Answer | None:
        """The answer to a beat BeatScope refused ("course" or "cm"); None if it may count."""
        if refused == "course":
            return self.problem(call, 403, f"you are not enrolled in course {beat.courseid}",
                                "course")  # fmt: skip
        if refused == "cm":
            return self.problem(call, 403, f"activity {beat.cmid} is not in course "
                                f"{beat.courseid}", "cm")  # fmt: skip
        return None

    def accepted(self, call: BeatCall) -> Answer:
        return self._answer(call, 204)

    def unavailable(self, call: BeatCall) -> Answer:
        """The bus cannot take the beat now; the script keeps it and retries later."""
        return self.problem(call, 503, "try again later")
