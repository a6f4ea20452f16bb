"""The request's sign-in: the Flask cookie carries a server-side session id, checked per request.

Flask's signed cookie alone would stay valid for as long as its signature does, whatever
happened since (sign-out, suspension); here the cookie holds only a random id whose row in the
app DB (common/access/web_sessions) decides. Every view asks `session_user_id()`, once per
request (the answer is kept in `g`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, g, has_request_context, request, session

from common.access.viewer import forget_access
from common.access.web_sessions import (
    create_web_session,
    end_web_session,
    purge_web_sessions,
    revoke_user_web_sessions,
    session_id_hash,
    validate_web_session,
)
from common.audit import record_audit

SESSION_ID = "sid"


def _context():  # type: ignore[no-untyped-def]
    return current_app.extensions["manireports"]


def _now() -> datetime:
    return datetime.fromtimestamp(_context().clock(), UTC)


def start_session(user_id: int) -> None:
    """Sign `user_id` in: a new session row and a fresh cookie (no fixation across sign-in).
    Also purges rows that ended more than a day ago (one indexed DELETE per sign-in)."""
    ctx, now = _context(), _now()
    previous = session.get(SESSION_ID)
    with ctx.appdb.transaction() as db:
        if isinstance(previous, str):  # signing in again in this browser: one session, not two
            end_web_session(db, previous, now, "replaced by a new sign-in")
        session_id = create_web_session(
            db, user_id, now,
            max_age_s=ctx.settings.login_max_age_s,
            ip=request.remote_addr,
            user_agent=request.user_agent.string,
        )  # fmt: skip
    with ctx.appdb.transaction() as db:
        purge_web_sessions(db, now)
    forget_access(ctx.moodle, user_id)  # a new sign-in reads roles and companies afresh
    session.clear()
    session[SESSION_ID] = session_id
    session.permanent = False
    g.pop("viewer", None)
    g.session_user_id = user_id


def session_user_id() -> int | None:
    """The signed-in user's id if this request's session is live, else None (and the cookie's
    stale id is dropped)."""
    if "session_user_id" not in g:
        g.session_user_id = _validate()
    return g.session_user_id  # type: ignore[no-any-return]


def current_session_hash() -> str | None:
    """The stored hash of this request's session id (to mark "this browser" in a list)."""
    session_id = session.get(SESSION_ID)
    return session_id_hash(session_id) if isinstance(session_id, str) else None


def end_session(reason: str = "signed out") -> None:
    """Sign out: the session row is revoked, so a copy of the cookie is worthless too."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        with _context().appdb.transaction() as db:
            end_web_session(db, session_id, _now(), reason)
    session.clear()
    g.session_user_id = None
    g.pop("viewer", None)


def revoke_user_sessions(user_id: int, *, actor_id: int | None, reason: str) -> int:
    """End every session of `user_id` (every browser), audited; returns how many were live."""
    ctx, now = _context(), _now()
    with ctx.appdb.transaction() as db:
        ended = revoke_user_web_sessions(db, user_id, now, reason)
        record_audit(
            db,
            actor_id=actor_id,
            action="sessions_revoked",
            object_type="user",
            object_id=user_id,
            ip=request.remote_addr if has_request_context() else None,
            details={"reason": reason, "sessions": ended},
        )
    forget_access(ctx.moodle, user_id)
    if has_request_context() and g.get("session_user_id") == user_id:
        g.session_user_id = None
        g.pop("viewer", None)
    return ended


def _validate() -> int | None:
    session_id = session.get(SESSION_ID)
    if session_id is None:
        return None
    user_id = None
    if isinstance(session_id, str):
        ctx = _context()
        with ctx.appdb.transaction() as db:
            user_id = validate_web_session(
                db, session_id, _now(),
                idle_s=ctx.settings.login_idle_timeout_s,
                max_age_s=ctx.settings.login_max_age_s,
            )  # fmt: skip
    if user_id is None:
        session.clear()
    return user_id
