"""How many requests one API token may make: API_RATE_LIMIT_PER_MINUTE (default 120) a minute.

Counted in the app DB with the atomic attempt counters the sign-in throttle uses
(`common.access.attempt_counters`): one row per token, one conditional UPDATE per request in a
transaction of its own, so every web process and replica shares the count and concurrent
requests can never pass the limit. A token's window opens with its first request and lasts a
minute; a request past the limit is answered 429 with `Retry-After` (the seconds until the
window ends) and is not counted. A ManiReports token and a Moodle token are counted apart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import current_app
from flask.sansio.app import App
from sqlalchemy import select

from common.access.attempt_counters import COUNTERS, AttemptCounters, bucket_key

WINDOW = timedelta(minutes=1)
EXTENSION = "manireports.api_rate_limiter"


class RateLimiter:
    """The app's limiter; `clock` (Unix seconds) is wall-clock time unless a test sets it."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock

    def admit(self, counters: AttemptCounters, bucket: str, limit: int) -> int | None:
        """None if the request may go ahead (and is counted), else the seconds to wait."""
        if limit <= 0:
            return None
        now = datetime.fromtimestamp(self.clock(), UTC)
        name = f"api:{bucket}"
        if counters.reserve(name, limit, WINDOW, now):
            return None
        with counters.engine.connect() as conn:
            started = conn.scalar(
                select(COUNTERS.c.window_start).where(COUNTERS.c.bucket == bucket_key(name))
            )
        if started is None:  # the window was reset meanwhile: trying again will do
            return 1
        return max(1, math.ceil((started + WINDOW - now).total_seconds()))


def install(app: App) -> None:
    app.extensions.setdefault(EXTENSION, RateLimiter())


def limiter() -> RateLimiter:
    found: RateLimiter = current_app.extensions[EXTENSION]
    return found
