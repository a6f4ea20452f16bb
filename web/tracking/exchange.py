"""Heartbeat tokens for learners who use only Moodle: their `MoodleSession` cookie is the proof.

ManiReports is served under the Moodle site's own host (a reverse-proxy path such as
`/manireports/`, deploy/nginx-moodle-path.conf), so the browser sends Moodle's session cookie
with the snippet's call. The session is checked read-only (common/moodle/sessions.py) and a
token is issued for the session's own user — never for a user the request names, and never
when the browser also holds a ManiReports sign-in of someone else.

Every refusal reads the same to the caller ("no live Moodle session"), so a guesser learns
nothing about a session id; the reason is only counted, per process, for the Time tracking
page. Session ids that match no session are what guessing looks like: an address that sends
`GUESS_LIMIT` of them within `GUESS_WINDOW` is answered 429 until the window ends (counted in
the app DB, shared by every web process). Visitors who are simply not logged in, guests and
old cookies are not counted: a school behind one address must not lock itself out.

The count is read only for addresses this process has seen guess within the window, so a
learner's exchange costs no app DB read at all; a guesser's first miss on each web process
marks it there, and from then on every request of theirs is checked against the shared count.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select

from common.access.attempt_counters import COUNTERS, AttemptCounters, bucket_key
from common.moodle.sessions import MoodleSessions, Verdict

GUESS_LIMIT = 30
GUESS_WINDOW = timedelta(minutes=5)
MAX_SUSPECTS = 100_000  # addresses remembered per process (then the expired ones are dropped)
GUESSING = frozenset({"malformed", "unknown"})
# Built once: this read runs on every exchange.
_BUCKET = select(COUNTERS.c.attempts, COUNTERS.c.window_start).where(
    COUNTERS.c.bucket == bindparam("bucket")
)


@dataclass(frozen=True)
class Exchange:
    user_id: int | None  # the token's user, or None when refused
    reason: str  # "ok", a common.moodle.sessions reason, "no_cookie", "other_user", "throttled"
    retry_after_s: int = 0


class TokenExchange:
    def __init__(self, sessions: MoodleSessions, counters: AttemptCounters) -> None:
        self.sessions = sessions
        self.counters = counters
        self._lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()  # since this process started
        self.last_issued: float | None = None
        self._suspects: dict[str, float] = {}  # address -> until when its count is read

    def exchange(
        self, sid: str | None, client: str, now: float, *, claimed: Iterable[int] = ()
    ) -> Exchange:
        """A token's user for this Moodle session id, asked from address `client`; `claimed`
        are users the request itself names (the page's user, a ManiReports sign-in)."""
        if not sid:
            return self._count(Exchange(None, "no_cookie"))
        bucket = f"moodle-token:{client}"
        if self._suspect(client, now):
            wait = self._throttled(bucket, now)
            if wait:
                return self._count(Exchange(None, "throttled", wait))
        verdict: Verdict = self.sessions.verify(sid, now)
        if verdict.user_id is None:
            if verdict.reason in GUESSING:
                self._mark_suspect(client, now)
                when = datetime.fromtimestamp(now, UTC)
                self.counters.reserve(bucket, GUESS_LIMIT, GUESS_WINDOW, when)
            return self._count(Exchange(None, verdict.reason))
        if any(user != verdict.user_id for user in claimed):
            # Two people's sessions in one browser: whose time would this be? Neither's.
            return self._count(Exchange(None, "other_user"))
        with self._lock:
            self.last_issued = now
        return self._count(Exchange(verdict.user_id, "ok"))

    def _suspect(self, client: str, now: float) -> bool:
        with self._lock:
            until = self._suspects.get(client)
            if until is not None and until <= now:
                del self._suspects[client]
                return False
            return until is not None

    def _mark_suspect(self, client: str, now: float) -> None:
        with self._lock:
            if len(self._suspects) >= MAX_SUSPECTS:
                self._suspects = {a: t for a, t in self._suspects.items() if t > now}
                if len(self._suspects) >= MAX_SUSPECTS:
                    self._suspects.clear()  # their counts stay in the app DB; misses re-mark
            self._suspects[client] = now + GUESS_WINDOW.total_seconds()

    def _throttled(self, bucket: str, now: float) -> int:
        """Seconds until `bucket`'s window ends if it is full, else 0 (one indexed read)."""
        with self.counters.engine.connect() as conn:
            row = conn.execute(_BUCKET, {"bucket": bucket_key(bucket)}).first()
        if row is None or row.attempts < GUESS_LIMIT:
            return 0
        started = row.window_start
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        remaining = (started + GUESS_WINDOW - datetime.fromtimestamp(now, UTC)).total_seconds()
        return max(0, math.ceil(remaining))

    def _count(self, result: Exchange) -> Exchange:
        with self._lock:
            self.outcomes[result.reason] += 1
        return result
