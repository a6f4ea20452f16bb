"""What the Time tracking page reports about the set-up: how the Moodle site keeps sessions,
whether this request came through the proxy path with Moodle's cookie, and whether beats have
been arriving (from the heartbeat sessions the aggregator stores)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import distinct, func, select

from common.models.analytics import UsertimeSession
from common.moodle.sessions import SiteSessions, Verdict
from common.tenancy.scope import TenantScope
from common.tenancy.scoped import scoped
from common.timezones import SITE_DEFAULT

RECENT = timedelta(hours=24)


@dataclass(frozen=True)
class TrackingStatus:
    site: SiteSessions | None  # None: the Moodle config could not be read
    redis_address: str | None  # host:port/db of MOODLE_SESSION_REDIS_URL, no password
    redis_reachable: bool | None
    script_root: str  # the path prefix this page was reached under ('' without a proxy path)
    cookie_name: str
    cookie_arrived: bool
    cookie_verdict: Verdict | None  # the viewer's own Moodle session, when the cookie arrived
    sessions_24h: int
    learners_24h: int
    last_beat: datetime | None
    last_beat_text: str | None  # in the viewer's timezone
    outcomes: dict[str, int] = field(default_factory=dict)
    last_issued: float | None = None


def redis_address(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    database = parts.path.lstrip("/") or "0"
    return f"{parts.hostname}:{parts.port or 6379}/{database}"


def recent_beats(appdb, source, scope: TenantScope, now: float) -> tuple[int, int, datetime | None]:  # type: ignore[no-untyped-def]
    """Heartbeat sessions (not log estimates) touched in the last 24 h, their learners, and the
    last beat the aggregator has applied."""
    s = UsertimeSession
    since = datetime.fromtimestamp(now, UTC) - RECENT
    query = select(func.count(), func.count(distinct(s.userid))).where(
        s.estimated.is_(False), s.lastbeat >= since
    )
    last = select(func.max(s.lastbeat)).where(s.estimated.is_(False))
    with appdb.transaction() as db:
        count, learners = db.execute(scoped(query, scope, source)).one()
        last_beat = db.execute(scoped(last, scope, source)).scalar()
    if last_beat is not None and last_beat.tzinfo is None:
        last_beat = last_beat.replace(tzinfo=UTC)
    return int(count), int(learners), last_beat


def local_time(moment: datetime | None, timezone: str | None) -> str | None:
    """`moment` in the viewer's Moodle timezone, e.g. "1 Dec 2026, 06:50 CET" ('99', empty or
    unknown zones: UTC, as the reports do)."""
    if moment is None:
        return None
    try:
        zone = ZoneInfo("UTC" if timezone in (None, "", SITE_DEFAULT) else str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = moment.astimezone(zone)
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname()}"
