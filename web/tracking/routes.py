"""Time tracking: the heartbeat endpoint, heartbeat tokens and the admin snippet page.

Moodle pages load `static/js/heartbeat.js` (the snippet an admin pastes into Moodle's
additional HTML). The script gets a token for the page's learner — first by proving their
Moodle session (`POST /tracking/moodle-token`, web/tracking/exchange.py: ManiReports served
under Moodle's host so the `MoodleSession` cookie arrives), else from a ManiReports sign-in
(`/tracking/token`) — and posts a beat every 20-30 s while the page is visible. A beat is
checked (its token, and that the token's user is enrolled in the course and the activity is
of that course, answered from a short in-process cache) and published to JetStream; nothing
is written to a database here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from common.access import capabilities as caps
from common.access.attempt_counters import AttemptCounters
from common.analytics.beat_scope import BeatScope
from common.analytics.heartbeats import SUBJECT
from common.moodle.sessions import MoodleSessions, RedisSessionStore
from web.app import csrf
from web.auth.guards import (
    Tenancy,
    open_to,
    optional_viewer,
    request_scope,
    signed_in,
    web_context,
)
from web.auth.sessions import session_user_id
from web.bus_client import BusUnavailable
from web.tracking.beat_check import (
    JSON_TYPE,
    MAX_BEAT_BYTES,
    Answer,
    BeatCall,
    BeatChecks,
    cors_headers,
    origin_refused,
    problem_body,
)
from web.tracking.exchange import TokenExchange
from web.tracking.publisher import BeatPublisher
from web.tracking.status import TrackingStatus, local_time, recent_beats, redis_address
from web.tracking.tokens import HeartbeatTokens

bp = Blueprint("tracking", __name__, url_prefix="/tracking", template_folder="templates")

EXTENSION = "manireports.tracking"


class Tracking:
    """What the endpoint keeps for the app's lifetime: the token signer, the enrolment cache
    and the publisher."""

    def __init__(self) -> None:
        ctx = web_context()
        self.tokens = HeartbeatTokens(ctx.settings.secret_key, ctx.settings.heartbeat_token_ttl_s)
        self.scope = BeatScope(ctx.moodle)
        self.publisher = BeatPublisher(ctx.bus_client, SUBJECT)
        settings = ctx.settings
        self.redis_store = None
        if settings.moodle_session_redis_url:
            self.redis_store = RedisSessionStore(
                settings.moodle_session_redis_url, settings.moodle_session_redis_prefix
            )
        self.sessions = MoodleSessions(
            ctx.moodle, handler=settings.moodle_session_handler, redis_store=self.redis_store
        )
        self.exchange = TokenExchange(self.sessions, AttemptCounters(ctx.appdb.engine))


def tracking() -> Tracking:
    state = current_app.extensions.get(EXTENSION)
    if state is None:
        state = current_app.extensions.setdefault(EXTENSION, Tracking())
    return state  # type: ignore[no-any-return]


def _problem(status: int, error: str, field: str | None = None, **extra: Any) -> Response:
    return Response(problem_body(error, field, **extra), status, mimetype=JSON_TYPE)


def _host_url() -> str:
    return request.host_url


def _cors(response: Response, *, credentials: bool) -> Response:
    allowed = web_context().settings.tracking_allowed_origins
    origin = request.headers.get("Origin")
    response.headers.extend(cors_headers(origin, _host_url(), allowed, credentials=credentials))
    return response


def _origin_refused() -> bool:
    allowed = web_context().settings.tracking_allowed_origins
    return origin_refused(request.headers.get("Origin"), _host_url(), allowed)


def _checks() -> BeatChecks:
    # Read per request: the settings may change under a running app (tests, reloads).
    settings = web_context().settings
    return BeatChecks(
        settings.time_tracking_enabled, settings.tracking_allowed_origins, tracking().tokens
    )


def _send(answer: Answer) -> Response:
    return Response(answer.body, answer.status, headers=list(answer.headers),
                    content_type=answer.content_type)  # fmt: skip


@bp.route("/beat", methods=["OPTIONS"])
@open_to(Tenancy.PUBLIC)
def beat_preflight():  # type: ignore[no-untyped-def]
    return _send(_checks().preflight(request.headers.get("Origin"), _host_url()))


@bp.post("/beat")
@csrf.exempt  # authenticated by the heartbeat token, not a session
@open_to(Tenancy.SIGNED)  # the token names the user; the enrolment check scopes the beat
def beat():  # type: ignore[no-untyped-def]
    """The small sites' beat endpoint; the checks are web/tracking/beat_check.py's, shared
    with the lean app (`manireports beat`)."""
    checks = _checks()
    call = BeatCall(
        raw=request.get_data(cache=False),
        origin=request.headers.get("Origin"),
        host_url=_host_url(),
        now=web_context().clock(),
    )
    checked = checks.check(call)
    if isinstance(checked, Answer):
        return _send(checked)
    try:
        refused = tracking().scope.refusal(checked.userid, checked.courseid, checked.cmid, call.now)
    except Exception:  # noqa: BLE001 - the Moodle DB is away: the script retries the beat
        current_app.logger.exception("enrolment check failed")
        return _send(checks.unavailable(call))
    problem = checks.scope_problem(call, checked, refused)
    if problem is not None:
        return _send(problem)
    try:
        tracking().publisher.publish(checked.payload())
    except BusUnavailable as exc:
        current_app.logger.warning("heartbeat not published: %s", exc)
        return _send(checks.unavailable(call))
    return _send(checks.accepted(call))


@bp.get("/token")
@open_to(Tenancy.PUBLIC)  # answers 401 (not a sign-in redirect) without a live session
def token():  # type: ignore[no-untyped-def]
    """A heartbeat token for the signed-in user, for the script on Moodle pages."""
    ctx = web_context()
    if _origin_refused():
        return _problem(403, "this origin may not request heartbeat tokens", "Origin")
    if not ctx.settings.time_tracking_enabled:
        return _cors(_problem(403, "time tracking is disabled", tracking=False), credentials=True)
    user_id = session_user_id()
    if user_id is None:
        return _cors(_problem(401, "sign in to ManiReports first"), credentials=True)
    return _cors(_token_response(user_id, ctx.clock()), credentials=True)


def _token_response(user_id: int, now: float) -> Response:
    issued, expires = tracking().tokens.issue(user_id, now)
    interval = {"min_s": 20, "max_s": 30}
    response = jsonify(token=issued, expires=expires, tracking=True, interval=interval)
    response.headers["Cache-Control"] = "no-store"
    return response


NO_MOODLE_SESSION = "sign in to Moodle first"


@bp.post("/moodle-token")
@csrf.exempt  # proven by the Moodle session cookie (and the Origin check), not a form
@open_to(Tenancy.SIGNED)  # the Moodle session names the user
def moodle_token():  # type: ignore[no-untyped-def]
    """A heartbeat token for the learner whose live Moodle session cookie came with the call."""
    ctx = web_context()
    if _origin_refused():
        return _problem(403, "this origin may not request heartbeat tokens", "Origin")
    if not ctx.settings.time_tracking_enabled:
        return _cors(_problem(403, "time tracking is disabled", tracking=False), credentials=True)
    if (request.content_length or 0) > MAX_BEAT_BYTES:
        return _cors(_problem(413, "body too large"), credentials=True)
    claimed = []
    body = request.get_json(silent=True) if request.content_length else None
    if isinstance(body, dict) and body.get("user") is not None:
        named = body.get("user")
        # A page may say whose it is; a session of anyone else then counts for nothing.
        claimed.append(named if isinstance(named, int) and not isinstance(named, bool) else -1)
    if request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]):  # a ManiReports sign-in
        signed = session_user_id()
        if signed is not None:
            claimed.append(signed)
    now = ctx.clock()
    sid = request.cookies.get(ctx.settings.moodle_session_cookie)
    try:
        result = tracking().exchange.exchange(sid, request.remote_addr or "", now, claimed=claimed)
    except Exception:  # noqa: BLE001 - the Moodle DB is away: no token, and say so plainly
        current_app.logger.exception("Moodle session check failed")
        return _cors(_problem(503, "try again later"), credentials=True)
    if result.reason == "throttled":
        response = _problem(429, "too many attempts; try again later")
        response.headers["Retry-After"] = str(result.retry_after_s)
        return _cors(response, credentials=True)
    if result.reason == "store_unavailable":
        return _cors(_problem(503, "try again later"), credentials=True)
    if result.user_id is None:
        return _cors(_problem(401, NO_MOODLE_SESSION), credentials=True)
    return _cors(_token_response(result.user_id, now), credentials=True)


@bp.get("/")
@signed_in(caps.VIEW_ADMIN_DASHBOARD, tenancy=Tenancy.SITE)  # site-wide settings only
def snippet():  # type: ignore[no-untyped-def]
    ctx = web_context()
    return render_template(
        "tracking/snippet.html",
        settings=ctx.settings,
        status=_status(),
        script_url=request.host_url.rstrip("/") + request.script_root + "/static/js/heartbeat.js",
    )


def _status() -> TrackingStatus:
    ctx, state = web_context(), tracking()
    now = ctx.clock()
    try:
        site = state.sessions.site()
    except Exception:  # noqa: BLE001 - the page still shows the snippet and what it can
        current_app.logger.exception("Moodle session settings could not be read")
        site = None
    sid = request.cookies.get(ctx.settings.moodle_session_cookie)
    verdict = None
    if sid and site:
        try:
            verdict = state.sessions.verify(sid, now)
        except Exception:  # noqa: BLE001 - shown as "not checked"; the log has the cause
            current_app.logger.exception("the viewer's Moodle session could not be checked")
    count, learners, last_beat = recent_beats(ctx.appdb, ctx.moodle, request_scope(), now)
    viewer = optional_viewer()
    return TrackingStatus(
        site=site,
        redis_address=redis_address(ctx.settings.moodle_session_redis_url),
        redis_reachable=state.redis_store.ping() if state.redis_store else None,
        script_root=request.script_root,
        cookie_name=ctx.settings.moodle_session_cookie,
        cookie_arrived=sid is not None,
        cookie_verdict=verdict,
        sessions_24h=count,
        learners_24h=learners,
        last_beat=last_beat,
        last_beat_text=local_time(last_beat, viewer.timezone if viewer else None),
        outcomes=dict(state.exchange.outcomes),
        last_issued=state.exchange.last_issued,
    )
