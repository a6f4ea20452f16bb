"""Server-side web sessions: a sign-in lasts only while its row in the app DB says so.

The browser's cookie carries a random session id; the table keeps only its SHA-256, so the
cookie is useless once the row is revoked or gone, and a copy of the table is useless as a
cookie. A session ends at sign-out, on revocation ("sign out everywhere", an admin, a user
suspended in Moodle), after the idle timeout without a request, or at its absolute deadline.
`last_seen` is written at most once a minute, not on every request.

Ended and expired rows are purged a day later by `purge_web_sessions`, which sign-in calls.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from common.models.access import WebSession

SESSION_ID_BYTES = 32
LAST_SEEN_EVERY = timedelta(minutes=1)
PURGE_AFTER = timedelta(days=1)
USER_AGENT_LENGTH = 255
SESSIONS: Table = WebSession.__table__  # type: ignore[assignment]


def session_id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def create_web_session(
    db: Session,
    user_id: int,
    now: datetime,
    *,
    max_age_s: int,
    ip: str | None,
    user_agent: str | None,
) -> str:
    """A new session for `user_id`; returns the session id for the cookie (stored hashed)."""
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    db.add(
        WebSession(
            sid_hash=session_id_hash(session_id),
            userid=user_id,
            created=now,
            last_seen=now,
            expires=now + timedelta(seconds=max_age_s),
            ip=ip,
            user_agent=(user_agent or "")[:USER_AGENT_LENGTH] or None,
        )
    )
    return session_id


def validate_web_session(
    db: Session, session_id: str, now: datetime, *, idle_s: int, max_age_s: int
) -> int | None:
    """The user id of a live session; None if it is unknown, ended, idle or too old."""
    row = db.execute(
        select(SESSIONS.c.id, SESSIONS.c.userid, SESSIONS.c.created, SESSIONS.c.last_seen,
               SESSIONS.c.expires, SESSIONS.c.revoked)
        .where(SESSIONS.c.sid_hash == session_id_hash(session_id))
    ).first()  # fmt: skip
    if row is None or row.revoked is not None:
        return None
    deadline = min(row.expires, row.created + timedelta(seconds=max_age_s))
    if now >= deadline:
        return None
    if now - row.last_seen >= timedelta(seconds=idle_s):
        _end(db, SESSIONS.c.id == row.id, now, "idle timeout")
        return None
    if now - row.last_seen >= LAST_SEEN_EVERY:
        db.execute(update(SESSIONS).where(SESSIONS.c.id == row.id).values(last_seen=now))
    return int(row.userid)


def end_web_session(db: Session, session_id: str, now: datetime, reason: str) -> None:
    _end(db, SESSIONS.c.sid_hash == session_id_hash(session_id), now, reason)


def revoke_user_web_sessions(db: Session, user_id: int, now: datetime, reason: str) -> int:
    """End every live session of `user_id`; returns how many were live."""
    return _end(db, SESSIONS.c.userid == user_id, now, reason)


def live_web_sessions(db: Session, user_id: int, now: datetime, *, idle_s: int) -> list[WebSession]:
    """The user's sessions that would still be accepted, most recently used first."""
    query = (
        select(WebSession)
        .where(
            WebSession.userid == user_id,
            WebSession.revoked.is_(None),
            WebSession.expires > now,
            WebSession.last_seen > now - timedelta(seconds=idle_s),
        )
        .order_by(WebSession.last_seen.desc(), WebSession.id.desc())
    )
    return list(db.scalars(query))


def purge_web_sessions(db: Session, now: datetime) -> int:
    """Delete sessions that ended or expired more than a day ago; returns how many."""
    result = db.execute(delete(SESSIONS).where(SESSIONS.c.expires < now - PURGE_AFTER))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _end(db: Session, which, now: datetime, reason: str) -> int:  # type: ignore[no-untyped-def]
    # `expires` moves to the end, so the purge finds ended sessions by the same index.
    result = db.execute(
        update(SESSIONS)
        .where(which, SESSIONS.c.revoked.is_(None), SESSIONS.c.expires > now)
        .values(revoked=now, revoked_reason=reason[:64], expires=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
