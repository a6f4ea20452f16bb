"""Is this `MoodleSession` cookie a live, signed-in Moodle session, and whose? Read-only.

Moodle (≤ 4.4, every handler) keeps one `sessions` row per session: `sid` is the cookie's
value, `userid` 0 until someone logs in, `state` 0 while normal, `timemodified` refreshed while
the session is used; a session is live while `timemodified` is within the site's
`sessiontimeout` (config, default 8 hours). Moodle 4.5's Redis handler keeps no row: the
session lives only in Redis, as a hash at `<prefix>session_<sid>` with the same fields (each
stored through phpredis's PHP serializer). Older Redis handlers keep the session data itself at
`<prefix><sid>`, the data naming the user as `USER->id` (common/moodle/php_session.py).

A session counts only if its user is a real, active account: not 0 (not logged in), not the
site's guest (config `siteguest`), not deleted, suspended or `nologin`. Nothing here writes:
Moodle's own reads refresh a Redis key's expiry, ours never do.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError

from common.moodle.php_session import (
    UnreadableSession,
    php_scalar,
    session_user_id,
    unwrap_store_value,
)
from common.moodle.source import MoodleSource

# PHP session ids: letters, digits, ',' and '-', 22 to 256 characters; Moodle's column holds 128.
SID = re.compile(r"[A-Za-z0-9,-]{22,128}")
DEFAULT_SESSION_TIMEOUT_S = 8 * 3600
CONFIG_TTL_S = 60.0
REDIS_TIMEOUT_S = 0.5
# The refusal reasons, for counting; people are told only that there is no live session.
REASONS = (
    "malformed",  # not a PHP session id
    "unknown",  # no such session
    "ended",  # state is not 0
    "expired",  # timemodified older than sessiontimeout
    "not_logged_in",  # userid 0
    "guest",  # the site's guest account
    "inactive_user",  # deleted, suspended, nologin or missing
    "unreadable",  # the store's data is not what Moodle writes
    "store_unavailable",  # the session store (Redis) did not answer
)


class SessionStoreUnavailable(RuntimeError):
    """The handler's own store could not be asked; the session is refused, not guessed."""


@dataclass(frozen=True)
class SiteSessions:
    """How the site keeps sessions: its handler (and where that came from) and its timeout."""

    handler: str  # database, redis, file, memcached
    handler_source: str  # "setting" (MOODLE_SESSION_HANDLER), "config" (the site's) or "default"
    timeout_s: int
    guest_id: int
    sessions_table: bool  # the `sessions` table could be read


@dataclass(frozen=True)
class StoredSession:
    userid: int
    state: int
    timemodified: int | None  # None: the store expires it itself (older Redis handlers)


@dataclass(frozen=True)
class Verdict:
    user_id: int | None  # the session's user when it counts, else None
    reason: str  # "ok" or one of REASONS
    store: str | None = None  # where the session was found: "database" or "redis"


def handler_name(configured: str) -> str:
    """`\\core\\session\\redis` → `redis` (the class name's last part)."""
    return configured.strip().rstrip("\\").rsplit("\\", 1)[-1].lower() or "file"


class RedisSessionStore:
    """The Redis session handler's store: reads only (HMGET, GET), with a short timeout."""

    def __init__(self, url: str, prefix: str = "") -> None:
        import redis  # only sites with the Redis handler need the client

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self.prefix = prefix

    def lookup(self, sid: str) -> StoredSession | None:
        """The session at `<prefix>session_<sid>` (4.5+) or `<prefix><sid>` (older handlers)."""
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(f"{self.prefix}session_{sid}", ["userid", "state", "timemodified"])
            pipe.get(f"{self.prefix}{sid}")
            fields, legacy = pipe.execute(raise_on_error=False)
        except self._errors as exc:
            raise SessionStoreUnavailable(f"Redis: {exc}") from None
        if isinstance(fields, Exception) or isinstance(legacy, Exception):
            # A key of another type (WRONGTYPE): not something Moodle wrote for a session.
            raise UnreadableSession("the session key holds another type")
        if fields and fields[0] is not None:
            userid, state, modified = (php_scalar(value) for value in fields)
            return StoredSession(
                userid=_whole(userid, "userid"),
                state=_whole(state or 0, "state"),
                timemodified=_whole(modified, "timemodified"),
            )
        if legacy is not None:
            user = session_user_id(unwrap_store_value(legacy))
            return StoredSession(userid=user, state=0, timemodified=None)
        return None

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except self._errors:
            return False

    def close(self) -> None:
        self.client.close()


def _whole(value: object, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    raise UnreadableSession(f"{field} is not a whole number")


class MoodleSessions:
    """Verifies Moodle session ids against the site's sessions table or Redis store."""

    def __init__(
        self,
        source: MoodleSource,
        *,
        handler: str = "auto",
        redis_store: RedisSessionStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.handler_setting = handler
        self.redis_store = redis_store
        self.clock = clock
        self._site: tuple[float, SiteSessions] | None = None
        # Built once (every token exchange runs them): the session row with its user's flags
        # in one query, and a user's flags alone (for sessions found in Redis).
        s, u = source.tables.sessions, source.tables.user
        self._session_query = (
            select(s.c.userid, s.c.state, s.c.timemodified, u.c.id.label("uid"), u.c.deleted,
                   u.c.suspended, u.c.auth)
            .select_from(s.outerjoin(u, u.c.id == s.c.userid))
            .where(s.c.sid == bindparam("sid"))
        )  # fmt: skip
        self._user_query = select(u.c.deleted, u.c.suspended, u.c.auth).where(
            u.c.id == bindparam("uid")
        )

    def site(self) -> SiteSessions:
        """The site's session settings, re-read at most every CONFIG_TTL_S."""
        now = self.clock()
        if self._site is None or now - self._site[0] > CONFIG_TTL_S:
            self._site = (now, self._read_site())
        return self._site[1]

    def _read_site(self) -> SiteSessions:
        config = self.source.tables.config
        names = ("sessiontimeout", "siteguest", "session_handler_class", "dbsessions")
        with self.source.engine.connect() as conn:
            query = select(config.c.name, config.c.value).where(config.c.name.in_(names))
            values = {str(name): str(value) for name, value in conn.execute(query)}
            sessions_table = _readable(conn, select(self.source.tables.sessions.c.id).limit(1))
        if self.handler_setting != "auto":
            handler, source = self.handler_setting, "setting"
        elif values.get("session_handler_class"):
            handler, source = handler_name(values["session_handler_class"]), "config"
        elif values.get("dbsessions") == "1":
            handler, source = "database", "config"
        else:
            handler, source = "file", "default"
        timeout = values.get("sessiontimeout", "")
        guest = values.get("siteguest", "")
        return SiteSessions(
            handler=handler,
            handler_source=source,
            timeout_s=int(timeout) if timeout.isdigit() else DEFAULT_SESSION_TIMEOUT_S,
            guest_id=int(guest) if guest.isdigit() else 1,
            sessions_table=sessions_table,
        )

    def verify(self, sid: object, now: float) -> Verdict:
        """Whose live, signed-in session `sid` is; a refusal names its reason (for counting)."""
        if not isinstance(sid, str) or not SID.fullmatch(sid):
            return Verdict(None, "malformed")
        site = self.site()
        found = self._from_table(sid) if site.sessions_table else None
        store = "database"
        if found is None:
            if site.handler != "redis" or self.redis_store is None:
                return Verdict(None, "unknown")
            store = "redis"
            try:
                stored = self.redis_store.lookup(sid)
            except SessionStoreUnavailable:
                return Verdict(None, "store_unavailable", store)
            except UnreadableSession:
                return Verdict(None, "unreadable", store)
            if stored is None:
                return Verdict(None, "unknown", store)
            found = (stored, self._user_state(stored.userid))
        stored, user = found
        reason = _refusal(stored, user, site, now)
        if reason:
            return Verdict(None, reason, store)
        return Verdict(stored.userid, "ok", store)

    def _from_table(self, sid: str) -> tuple[StoredSession, dict[str, Any] | None] | None:
        """The row for `sid` and its user's flags, in one query."""
        with self.source.engine.connect() as conn:
            row = conn.execute(self._session_query, {"sid": sid}).first()
        if row is None:
            return None
        stored = StoredSession(int(row.userid), int(row.state), int(row.timemodified))
        user = None if row.uid is None else dict(row._mapping)
        return stored, user

    def _user_state(self, user_id: int) -> dict[str, Any] | None:
        with self.source.engine.connect() as conn:
            row = conn.execute(self._user_query, {"uid": user_id}).first()
        return None if row is None else dict(row._mapping)


def _refusal(
    stored: StoredSession, user: dict[str, Any] | None, site: SiteSessions, now: float
) -> str | None:
    if stored.state != 0:
        return "ended"
    if stored.timemodified is not None and stored.timemodified < now - site.timeout_s:
        return "expired"
    if stored.userid == 0:
        return "not_logged_in"
    if stored.userid == site.guest_id:
        return "guest"
    if user is None or user["deleted"] or user["suspended"] or user["auth"] == "nologin":
        return "inactive_user"
    return None


def _readable(conn: Any, query: Any) -> bool:
    """Whether `query` runs (a table a site may lack); a failed statement is rolled back."""
    try:
        conn.execute(query).first()
    except DBAPIError:
        conn.rollback()
        return False
    return True
