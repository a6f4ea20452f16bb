"""Sign-in with Moodle credentials, throttled per account and per address, always audited.

Failed attempts are counted from the audit log itself, so throttling holds across every web
replica without a second store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.access.passwords import spend_equal_time, verify_moodle_password
from common.audit import OUTCOME_DENIED, OUTCOME_FAILED, OUTCOME_SUCCESS, record_audit
from common.models.access import AuditLog
from common.models.base import utcnow
from common.moodle import MoodleSource

ACTION = "login"
WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
MAX_USERNAME_LENGTH = 100  # user.username is char(100)

# One message for every refusal, so the form does not reveal which accounts exist.
INVALID = "Invalid username or password."
THROTTLED = "Too many failed sign-in attempts. Try again in 15 minutes."


@dataclass(frozen=True)
class SignInResult:
    user_id: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.user_id is not None


def sign_in(
    source: MoodleSource,
    session: Session,
    username: str,
    password: str,
    ip: str,
    peppers: tuple[str, ...] = (),
) -> SignInResult:
    # Moodle lower-cases usernames at login (core_text::strtolower).
    username = username.strip().lower()[:MAX_USERNAME_LENGTH]
    if _throttled(session, username, ip):
        record_audit(session, actor_id=None, action=ACTION, object_type="user",
                     object_id=username, outcome=OUTCOME_DENIED, ip=ip,
                     details={"reason": "throttled"})  # fmt: skip
        return SignInResult(None, THROTTLED)
    user = _find_user(source, username)
    if user is None:
        spend_equal_time(password)
        return _fail(session, username, ip, None, "unknown user")
    refusal = _refusal(user)
    if refusal:
        spend_equal_time(password)
        return _fail(session, username, ip, user.id, refusal)
    if not verify_moodle_password(password, user.password, peppers):
        return _fail(session, username, ip, user.id, "wrong password")
    record_audit(session, actor_id=user.id, action=ACTION, object_type="user",
                 object_id=username, outcome=OUTCOME_SUCCESS, ip=ip)  # fmt: skip
    return SignInResult(int(user.id))


def _find_user(source: MoodleSource, username: str):  # type: ignore[no-untyped-def]
    u = source.tables.user
    query = select(u.c.id, u.c.password, u.c.auth, u.c.deleted, u.c.suspended, u.c.confirmed).where(
        u.c.username == username, u.c.mnethostid == 1
    )
    with source.engine.connect() as conn:
        return conn.execute(query).first()


def _refusal(user) -> str | None:  # type: ignore[no-untyped-def]
    if user.deleted:
        return "deleted user"
    if user.suspended:
        return "suspended user"
    if user.auth == "nologin":
        return "nologin account"
    if not user.confirmed:
        return "unconfirmed account"
    if user.password == "not cached":
        return "external authentication"
    return None


def _fail(
    session: Session, username: str, ip: str, user_id: int | None, reason: str
) -> SignInResult:
    record_audit(session, actor_id=user_id, action=ACTION, object_type="user",
                 object_id=username, outcome=OUTCOME_FAILED, ip=ip,
                 details={"reason": reason})  # fmt: skip
    return SignInResult(None, INVALID)


def _throttled(session: Session, username: str, ip: str) -> bool:
    since = utcnow() - WINDOW
    failures = select(func.count()).where(
        AuditLog.action == ACTION,
        AuditLog.outcome == OUTCOME_FAILED,
        AuditLog.timecreated >= since,
    )
    by_account = session.scalar(failures.where(AuditLog.object_id == username)) or 0
    by_address = session.scalar(failures.where(AuditLog.ip == ip)) or 0
    return by_account >= MAX_FAILURES_PER_ACCOUNT or by_address >= MAX_FAILURES_PER_ADDRESS
