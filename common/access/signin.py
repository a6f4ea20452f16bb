"""Sign-in with Moodle credentials: throttled without a lock-out lever, always audited.

Only accounts whose password Moodle keeps in `user.password` can be checked here: the allowed
auth plugins are a setting (LOGIN_AUTH_PLUGINS, `manual,email` by default), and the site's
guest account (`config.siteguest`) never signs in. Every attempt reserves its throttling slots
before the password is checked (signin_throttle), so parallel guesses cannot outrun the limits,
and every attempt, admitted or not, leaves an audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from common.access.attempt_counters import AttemptCounters
from common.access.device_cookies import DeviceCookies
from common.access.passwords import NOT_CACHED, spend_equal_time, verify_moodle_password
from common.access.signin_throttle import Client, SigninThrottle
from common.appdb import AppDB
from common.audit import OUTCOME_DENIED, OUTCOME_FAILED, OUTCOME_SUCCESS, record_audit
from common.moodle import MoodleSource

ACTION = "login"
MAX_USERNAME_LENGTH = 100  # user.username is char(100)
LOCAL_MNETHOST = 1

# One message for every refusal, so the form reveals neither which accounts exist nor which
# limit was reached.
INVALID = "Invalid username or password. After repeated failures, wait 15 minutes and try again."


@dataclass(frozen=True)
class SignInResult:
    user_id: int | None
    error: str | None = None
    device_cookie: str | None = None  # the renewed device cookie after a success

    @property
    def ok(self) -> bool:
        return self.user_id is not None


@dataclass(frozen=True)
class Attempt:
    username: str
    password: str
    ip: str
    device_cookie: str | None
    now: float  # Unix seconds


class SignIn:
    """Sign-in for one site: its Moodle DB, the app DB, peppers and allowed auth plugins."""

    def __init__(
        self,
        source: MoodleSource,
        appdb: AppDB,
        secret_key: str,
        *,
        peppers: tuple[str, ...] = (),
        auth_plugins: tuple[str, ...] = ("manual", "email"),
    ):
        self.source = source
        self.appdb = appdb
        self.peppers = peppers
        self.auth_plugins = auth_plugins
        self.devices = DeviceCookies(secret_key)
        self.counters = AttemptCounters(appdb.engine)
        self.throttle = SigninThrottle(self.counters)

    def attempt(self, attempt: Attempt) -> SignInResult:
        # Moodle lower-cases usernames at login (core_text::strtolower).
        username = attempt.username.strip().lower()[:MAX_USERNAME_LENGTH]
        device = self.devices.device_for(attempt.device_cookie, username, attempt.now)
        client = Client(ip=attempt.ip, device=device)
        now = datetime.fromtimestamp(attempt.now, UTC)
        admission = self.throttle.admit(username, client, now)
        if admission.refused:
            self._audit(username, attempt.ip, None, OUTCOME_DENIED,
                        {"reason": "throttled", "limit": admission.refused,
                         "trusted_device": client.trusted})  # fmt: skip
            return SignInResult(None, INVALID)
        user = find_local_user(self.source, username)
        refusal = "unknown user" if user is None else self._refusal(user)
        if user is None or refusal is not None:
            spend_equal_time(attempt.password)
        elif not verify_moodle_password(attempt.password, user.password, self.peppers):
            refusal = "wrong password"
        if user is None or refusal is not None:
            self._audit(username, attempt.ip, user.id if user else None, OUTCOME_FAILED,
                        {"reason": refusal, "trusted_device": client.trusted})  # fmt: skip
            return SignInResult(None, INVALID)
        self.throttle.succeeded(admission)
        self.counters.purge(now)  # buckets idle for a day: one indexed DELETE per sign-in
        self._audit(username, attempt.ip, user.id, OUTCOME_SUCCESS,
                    {"trusted_device": client.trusted})  # fmt: skip
        cookie = self.devices.issue(attempt.device_cookie, username, attempt.now)
        return SignInResult(int(user.id), device_cookie=cookie)

    def _refusal(self, user: MoodleAccount) -> str | None:
        if user.deleted:
            return "deleted user"
        if user.suspended:
            return "suspended user"
        if user.is_guest:
            return "guest account"
        if user.auth == "nologin":
            return "nologin account"
        if user.auth not in self.auth_plugins:
            return f"auth plugin {user.auth} is not allowed to sign in here"
        if not user.confirmed:
            return "unconfirmed account"
        if user.password == NOT_CACHED:
            return "external authentication"
        return None

    def _audit(
        self, username: str, ip: str, user_id: int | None, outcome: str, details: dict[str, Any]
    ) -> None:
        with self.appdb.transaction() as db:
            record_audit(db, actor_id=user_id, action=ACTION, object_type="user",
                         object_id=username, outcome=outcome, ip=ip,
                         details=details)  # fmt: skip


@dataclass(frozen=True)
class MoodleAccount:
    id: int
    password: str
    auth: str
    deleted: bool
    suspended: bool
    confirmed: bool
    is_guest: bool  # the site's guest account (config `siteguest`)


def find_local_user(source: MoodleSource, username: str) -> MoodleAccount | None:
    """The local (mnethostid 1) account with this username, None if there is none. Deletion
    rewrites a username, so a deleted user is not found by their old name."""
    u, config = source.tables.user, source.tables.config
    siteguest = select(config.c.value).where(config.c.name == "siteguest").scalar_subquery()
    query = select(
        u.c.id, u.c.password, u.c.auth, u.c.deleted, u.c.suspended, u.c.confirmed,
        siteguest.label("siteguest"),
    ).where(u.c.username == username, u.c.mnethostid == LOCAL_MNETHOST)  # fmt: skip
    with source.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return MoodleAccount(
        id=int(row.id),
        password=str(row.password or ""),
        auth=str(row.auth or ""),
        deleted=bool(row.deleted),
        suspended=bool(row.suspended),
        confirmed=bool(row.confirmed),
        is_guest=str(row.id) == str(row.siteguest or "").strip(),
    )
