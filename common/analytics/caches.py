"""Pre-computed dashboard figures in `manireports_cache_summary`, one JSON document per scope.

The aggregator's `refresh_caches` task computes every scope (the site and each company) in a
few grouped queries (the activity trend from the log rows added since its previous run, see
`activity_months`; the 30-day time series from the dates whose daily rows changed since,
see `time_trend.moved_on`) and stores each as JSON with when it was computed and when it
expires (CACHE_TTL_S). Dashboards read one row; an expired entry is stale and is not served, and
entries of scopes that no longer exist are deleted at the next refresh.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.analytics.activity_months import (
    ActivityMonths,
    activity_trend,
    load_months,
    save_months,
    update_months,
)
from common.analytics.risk import flagged_by_course, last_scored
from common.analytics.state import daily_writes_seen, read_mark, write_mark
from common.analytics.time_trend import (
    DAYS,
    as_date,
    daily_series,
    empty_series,
    moved_on,
    series_by_scope,
)
from common.analytics.trends import (
    SITE,
    Scope,
    company_members,
    completion_trend,
    empty_trend,
    engagement_by_course,
    engagement_rollup,
    month_starts,
)
from common.analytics.upsert import upsert
from common.appdb import AppDB
from common.models.analytics import CacheSummary, UsertimeDaily
from common.models.base import table_of, utcnow
from common.moodle import MoodleSource
from common.tenancy import TenantScope, scoped

PREFIX = "dashboard:"
SEEN_MARK = "caches.daily_writes_seen"  # daily rows written after it: not in the series
MEMBERS_MARK = "caches.members"  # a fingerprint of the company members the series count
# A course's figures when none of its learners was active in 30 days.
NO_ENGAGEMENT = {"active_7": 0, "active_30": 0, "seconds_30": 0, "estimated": False,
                 "xapi_statements_30": None, "video_seconds_30": None}  # fmt: skip


def cache_key(company_id: int | None) -> str:
    return f"{PREFIX}site" if company_id is None else f"{PREFIX}company:{company_id}"


@dataclass(frozen=True)
class CachedFigures:
    payload: dict[str, Any]
    computed_at: datetime
    expires_at: datetime

    def age_s(self, now: datetime) -> int:
        return max(0, int((now - self.computed_at).total_seconds()))


@dataclass(frozen=True)
class MoodleTrends:
    """What the documents read from Moodle (with the activity months they fold the new log
    into): none of it waits on the other pre-aggregation steps."""

    members: dict[int, set[int]]
    loaded: ActivityMonths
    months: ActivityMonths
    completions: dict[Scope, dict[str, Any]]


def read_moodle_trends(appdb: AppDB, source: MoodleSource, now: int) -> MoodleTrends:
    with appdb.transaction() as session:
        loaded = load_months(session, month_starts(now))
    return MoodleTrends(company_members(source), loaded, update_months(loaded, source, now),
                        completion_trend(source, now))  # fmt: skip


def refresh_caches(
    appdb: AppDB,
    source: MoodleSource,
    *,
    ttl_s: int,
    now: int,
    moodle: MoodleTrends | None = None,
) -> int:
    """Recompute every scope's dashboard document; returns how many were stored."""
    started = time.perf_counter()
    moodle = moodle or read_moodle_trends(appdb, source, now)
    members, months, completions = moodle.members, moodle.months, moodle.completions
    starts = month_starts(now)
    activity = activity_trend(months, members, starts)
    today = datetime.fromtimestamp(now, UTC).date()
    with appdb.transaction() as session:
        rollup = engagement_rollup(session, members)
        daily, marks = _daily_time(session, members, today)
    scopes: list[Scope] = [SITE, *sorted(members)]
    computed = utcnow()
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    rows = []
    for scope in scopes:
        trend = empty_trend(starts)
        trend["events"] = activity.get(scope, trend)["events"]
        trend["active_users"] = activity.get(scope, trend)["active_users"]
        trend["completions"] = completions.get(scope, trend)["completions"]
        payload = {"trend": trend, "engagement": rollup.get(scope, {"courses": []}),
                   "daily_time": daily.get(scope, empty_series(today)), "as_of": now}  # fmt: skip
        rows.append(
            {"cachekey": cache_key(scope), "companyid": scope,
             "payload": json.dumps(payload, separators=(",", ":")), "computed_at": computed,
             "expires_at": computed + timedelta(seconds=ttl_s), "compute_ms": elapsed_ms}
        )  # fmt: skip
    with appdb.transaction() as session:
        save_months(session, months, loaded=moodle.loaded)
        for name, value in marks.items():
            write_mark(session, name, value)
        upsert(
            session,
            table_of(CacheSummary),
            rows,
            key=("cachekey",),
            update=("companyid", "payload", "computed_at", "expires_at", "compute_ms"),
        )
        keep = [row["cachekey"] for row in rows]
        session.execute(
            delete(CacheSummary).where(
                CacheSummary.cachekey.like(f"{PREFIX}%"), CacheSummary.cachekey.not_in(keep)
            )
        )
    return len(rows)


def _daily_time(
    session: Session, members: dict[int, set[int]], today: date
) -> tuple[dict[Scope, dict[str, Any]], dict[str, int]]:
    """Every scope's 30-day time series, and the marks to store with it. After a refresh
    that counted the same company members, only the dates with daily rows written since it,
    or new to the window, are recomputed; the others are carried over from its documents."""
    marks = {SEEN_MARK: daily_writes_seen(session), MEMBERS_MARK: _fingerprint(members)}
    seen = read_mark(session, SEEN_MARK)
    stored = _stored_series(session, [SITE, *members], today)
    if not seen or read_mark(session, MEMBERS_MARK) != marks[MEMBERS_MARK] or stored is None:
        return series_by_scope(session, members, today), marks
    series, as_of = stored
    d = UsertimeDaily
    since = today - timedelta(days=DAYS - 1)
    written = session.scalars(
        select(d.date).where(d.writeseq > seen, d.date.between(since, today))
        .distinct()
    )  # fmt: skip
    dates = {as_date(day) for day in written}
    dates |= {as_of + timedelta(days=n) for n in range(1, (today - as_of).days + 1)}
    fresh = series_by_scope(session, members, today, only=sorted(dates)) if dates else {}
    return moved_on(series, fresh, dates, today), marks


def _stored_series(
    session: Session, scopes: list[Scope], today: date
) -> tuple[dict[Scope, dict[str, Any]], date] | None:
    """The stored series of every scope and the date they are as of, when each scope has one
    (with per-day estimate flags) as of the same date in the 30 days up to `today`."""
    found = {
        companyid: json.loads(payload)
        for companyid, payload in session.execute(
            select(CacheSummary.companyid, CacheSummary.payload).where(
                CacheSummary.cachekey.like(f"{PREFIX}%")
            )
        )
    }
    if any(scope not in found for scope in scopes):
        return None
    documents = [found[scope] for scope in scopes]
    as_of = {int(document["as_of"]) for document in documents}
    if len(as_of) != 1 or any("estimated_days" not in d.get("daily_time", {}) for d in documents):
        return None
    day = datetime.fromtimestamp(as_of.pop(), UTC).date()
    if not today - timedelta(days=DAYS) < day <= today:
        return None
    return {scope: found[scope]["daily_time"] for scope in scopes}, day


def _fingerprint(members: dict[int, set[int]]) -> int:
    canonical = json.dumps(sorted((company, sorted(users)) for company, users in members.items()))
    return int.from_bytes(hashlib.blake2b(canonical.encode(), digest_size=7).digest(), "big")


def read_cache(session: Session, company_id: int | None, now: datetime) -> CachedFigures | None:
    """The scope's dashboard document, or None when there is none or it has expired."""
    row = session.execute(
        select(CacheSummary.payload, CacheSummary.computed_at, CacheSummary.expires_at).where(
            CacheSummary.cachekey == cache_key(company_id)
        )
    ).first()
    if row is None or row.expires_at <= now:
        return None
    return CachedFigures(json.loads(row.payload), row.computed_at, row.expires_at)


@dataclass(frozen=True)
class Overview:
    """What the analytics overview shows a scope. ``trend`` is None for a scope narrower than
    a company: the cached trend counts the whole company, which such a viewer may not see.

    ``flagged`` (per course) is counted when the page is read, from the very rows and scope
    the at-risk list pages through, so the two always agree; it is None until the first
    at-risk scoring has run (the page then says so rather than showing 0)."""

    figures: CachedFigures
    trend: dict[str, Any] | None
    engagement: dict[str, Any]
    flagged: dict[int, int] | None
    daily_time: dict[str, Any]  # time on task and active learners per day, 30 days

    @property
    def flagged_total(self) -> int | None:
        return None if self.flagged is None else sum(self.flagged.values())

    def course_rows(self) -> list[dict[str, Any]]:
        """One row per course with engagement or flagged learners (a flagged learner who has
        not been active for 30 days still counts in their course)."""
        rows = {r["course"]: dict(r) for r in self.engagement["courses"]}
        for course in self.flagged or {}:
            rows.setdefault(course, {**NO_ENGAGEMENT, "course": course})
        for row in rows.values():
            row["flagged"] = None if self.flagged is None else self.flagged.get(row["course"], 0)
        return [rows[c] for c in sorted(rows)]


def read_overview(
    session: Session, scope: TenantScope, source: MoodleSource, now: datetime
) -> Overview | None:
    """The cached dashboard document cut to ``scope``: a whole company (or the site) as cached;
    a narrower scope gets the engagement of its own learners and courses, computed from the
    stored per-learner figures, and no trend. None when nothing current is cached."""
    if scope.company_ids is not None and len(scope.company_ids) != 1:
        raise ValueError("the overview is for one company or the whole site")
    cached = read_cache(session, scope.company_id, now)
    if cached is None:
        return None
    flagged = flagged_by_course(session, scope, source) if last_scored(session) else None
    today = datetime.fromtimestamp(int(cached.payload["as_of"]), UTC).date()
    if scope.whole:
        payload = cached.payload
        # A document cached before the daily series existed: read it live once.
        daily = payload.get("daily_time") or daily_series(session, scope, source, today)
        return Overview(cached, payload["trend"], payload["engagement"], flagged, daily)
    engagement = engagement_by_course(session, lambda query: scoped(query, scope, source))
    daily = daily_series(session, scope, source, today)
    return Overview(cached, None, engagement, flagged, daily)


def invalidate_all(session: Session) -> None:
    """Drop every dashboard document; dashboards show nothing until the next refresh."""
    session.execute(delete(CacheSummary).where(CacheSummary.cachekey.like(f"{PREFIX}%")))
