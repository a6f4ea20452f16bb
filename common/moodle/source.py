"""Read-only access to the site's Moodle database and what that site has installed.

Features are detected from the tables that exist, never from version numbers: IOMAD may be
absent, and the SCORM tracking layout changed inside the 4.3 upgrade (NOTES.md §3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from sqlalchemy import inspect, select

from common.db import make_engine
from common.moodle.tables import DEFAULT_PREFIX, SCORM_LAYOUT_TABLES, MoodleTables

FEATURES_TTL_S = 60.0
MEMO_SIZE = 4096
T = TypeVar("T")


@dataclass(frozen=True)
class SiteFeatures:
    has_iomad: bool
    scorm_layout: Literal["track", "attempt", None]
    has_logstore: bool


class MoodleSource:
    """The Moodle DB of one site: a read-only engine and its prefixed tables."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.engine = make_engine(url, read_only=True)
        self.tables = MoodleTables(prefix)
        self._features: tuple[float, SiteFeatures] | None = None
        # Short-lived answers derived from this site (the ids a tenant scope resolves to, a
        # viewer's roles), keyed by their owner; each owner decides how long one is good for.
        self.memo: dict[object, tuple[float, object]] = {}

    def remembered(self, key: object, ttl_s: float, compute: Callable[[], T]) -> T:
        """`compute()`, or its answer from the last `ttl_s` seconds. Bounded: when MEMO_SIZE
        answers are held, all are dropped (they are cheap to recompute, and rarely that many)."""
        now = time.monotonic()
        cached = self.memo.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]  # type: ignore[return-value]
        value = compute()
        if len(self.memo) >= MEMO_SIZE:
            self.memo.clear()
        self.memo[key] = (now + ttl_s, value)
        return value

    def forget(self, key: object) -> None:
        self.memo.pop(key, None)

    def features(self) -> SiteFeatures:
        """What the site has, re-read at most every FEATURES_TTL_S: every web request asks, and
        inspecting the schema costs several queries, while plugins change only on upgrades."""
        now = time.monotonic()
        if self._features is None or now - self._features[0] > FEATURES_TTL_S:
            self._features = (now, self._read_features())
        return self._features[1]

    def _read_features(self) -> SiteFeatures:
        with self.engine.connect() as connection:
            present = {
                name.removeprefix(self.prefix)
                for name in inspect(connection).get_table_names()
                if name.startswith(self.prefix)
            }
        scorm_layout: Literal["track", "attempt", None] = None
        # The new tables win: the 4.3 upgrade creates them before it drops the old one.
        if present.issuperset(SCORM_LAYOUT_TABLES["attempt"]):
            scorm_layout = "attempt"
        elif present.issuperset(SCORM_LAYOUT_TABLES["track"]):
            scorm_layout = "track"
        return SiteFeatures(
            has_iomad={"company", "company_users"} <= present,
            scorm_layout=scorm_layout,
            has_logstore="logstore_standard_log" in present,
        )

    def site_admin_ids(self) -> tuple[int, ...]:
        """User ids in config `siteadmins`, in stored order (Moodle's main admin is first)."""
        config = self.tables.config
        with self.engine.connect() as connection:
            value = connection.scalar(select(config.c.value).where(config.c.name == "siteadmins"))
        return tuple(int(part) for part in (value or "").split(",") if part.strip())

    def dispose(self) -> None:
        self.engine.dispose()
