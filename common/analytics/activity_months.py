"""The activity trend (events and distinct active users per month), kept from the log's new rows.

For each month of the trend the app DB keeps every user's number of counted events
(`manireports_cache_summary`, key `activity-month:<month start>`). Per-user counts add up
across runs where distinct counts would not, and every scope's figures follow from them and
the company membership of the moment, so a run reads only the log rows added since the last
one (ids above the mark) and the rows whose time has come since (timecreated after the
previous run's `now`): the result is what a full scan of the log would give. A month is read
whole again only on a first run, when its document is missing, or when old log rows were
deleted (Moodle's log lifetime): then every month up to the oldest remaining row's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from common.analytics.state import read_mark, write_mark
from common.analytics.trends import SITE, Scope, empty_trend, month_bucket, month_starts
from common.analytics.upsert import upsert
from common.models.analytics import CacheSummary
from common.models.base import table_of, utcnow
from common.moodle import MoodleSource

PREFIX = "activity-month:"
LAST_ID = "activity_months.last_log_id"  # the highest log id counted
FIRST_ID = "activity_months.first_log_id"  # the lowest log id then: a higher one means a purge
UNTIL = "activity_months.now"  # the `now` of the last run: later rows were not counted yet

Counts = dict[int, int]  # user id -> counted events


@dataclass
class ActivityMonths:
    """Each trend month's per-user event counts (by month start), as of log id `last_id`
    and time `until`; `changed` are the months that differ from what is stored."""

    counts: dict[int, Counts]
    last_id: int = 0
    first_id: int = 0
    until: int = 0
    changed: set[int] = field(default_factory=set)


def month_key(start: int) -> str:
    return f"{PREFIX}{start}"


def load_months(session: Session, starts: list[int]) -> ActivityMonths:
    """What the previous run stored for the months of `starts` (none on a first run)."""
    rows = session.execute(
        select(CacheSummary.cachekey, CacheSummary.payload).where(
            CacheSummary.cachekey.in_([month_key(start) for start in starts])
        )
    )
    counts = {}
    for key, payload in rows:
        document = json.loads(payload)
        counts[int(key.removeprefix(PREFIX))] = dict(
            zip(document["users"], document["events"], strict=True)
        )
    return ActivityMonths(
        counts, read_mark(session, LAST_ID), read_mark(session, FIRST_ID), read_mark(session, UNTIL)
    )


def update_months(stored: ActivityMonths, source: MoodleSource, now: int) -> ActivityMonths:
    """The months of the trend ending at `now`, from `stored` and the log rows it lacks."""
    starts = month_starts(now)
    lg = source.tables.logstore_standard_log
    with source.engine.connect() as conn:
        # Two statements: SQLite reads MIN or MAX from the index only when it is alone.
        top = int(conn.scalar(select(func.max(lg.c.id))) or 0)
        first = int(conn.scalar(select(func.min(lg.c.id))) or 0)
        rebuild = _months_to_rebuild(conn, source, stored, starts, top, first, now)
        fresh = ActivityMonths(
            {start: ({} if start in rebuild else stored.counts.get(start, {})) for start in starts},
            last_id=top, first_id=first, until=now,
            changed=rebuild | {start for start in starts if start not in stored.counts},
        )  # fmt: skip
        bucket = month_bucket(lg.c.timecreated, starts).label("bucket")
        counted = (lg.c.userid > 1, lg.c.timecreated <= now, lg.c.id <= top)
        # Disjoint parts, each with one clear index range: the rebuilt months whole, then the
        # others' new rows and their older rows whose time has come since the previous run.
        parts = []
        if rebuild:
            parts.append((True, _within(lg.c.timecreated, sorted(rebuild))))
        if rebuild != set(starts) and stored.last_id < top:
            parts.append((False, and_(lg.c.id > stored.last_id, lg.c.timecreated >= starts[0])))
        if rebuild != set(starts) and stored.until < now:
            since = max(starts[0], stored.until + 1)
            parts.append((False, and_(lg.c.id <= stored.last_id, lg.c.timecreated >= since)))
        for whole, part in parts:
            query = select(bucket, lg.c.userid, func.count()).where(*counted, part)
            # by user first: the temporary B-tree of the grouping is smaller that way on SQLite
            for index, userid, events in conn.execute(query.group_by(lg.c.userid, bucket)):
                start = starts[index] if index >= 0 else None
                if start is None or (not whole and start in rebuild):
                    continue
                month = fresh.counts[start]
                month[int(userid)] = month.get(int(userid), 0) + int(events)
                fresh.changed.add(start)
    return fresh


def _months_to_rebuild(
    conn: Any, source: MoodleSource, stored: ActivityMonths, starts: list[int], top: int,
    first: int, now: int,
) -> set[int]:  # fmt: skip
    if not stored.last_id or stored.until > now or top < stored.last_id:
        # A first run, a clock set back, or a log emptied: count everything again.
        return set(starts)
    # A month the previous run had counted (it began before its `now`) must be stored.
    missing = {s for s in starts if s <= stored.until and s not in stored.counts}
    if first <= stored.first_id:
        return missing
    lg = source.tables.logstore_standard_log
    oldest = conn.scalar(select(lg.c.timecreated).where(lg.c.id == first))
    # Rows older than the oldest remaining one were deleted: the months they were in.
    return missing | {s for s in starts if oldest is None or s <= int(oldest)}


def _within(column: Any, months: list[int]) -> Any:
    """`column` in any of the months (sorted), as one range per run of consecutive months."""
    ranges: list[list[int]] = []
    for start in months:
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = _next_month(start)
        else:
            ranges.append([start, _next_month(start)])
    return or_(*(and_(column >= low, column < high) for low, high in ranges))


def _next_month(start: int) -> int:
    moment = datetime.fromtimestamp(start, UTC) + timedelta(days=32)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())


def save_months(session: Session, months: ActivityMonths, loaded: ActivityMonths) -> None:
    """Store the changed months and the marks; drop months the trend no longer shows.

    Nothing is stored when another run stored its months since these were `loaded`: its
    marks and months agree with each other, a mix of both runs' would not."""
    if (read_mark(session, LAST_ID), read_mark(session, UNTIL)) != (loaded.last_id, loaded.until):
        return
    computed = utcnow()
    rows = []
    for start in sorted(months.changed):
        users = sorted(months.counts[start])
        payload = {"users": users, "events": [months.counts[start][u] for u in users]}
        rows.append(
            {"cachekey": month_key(start), "companyid": None,
             "payload": json.dumps(payload, separators=(",", ":")), "computed_at": computed,
             # the month leaves the trend when the window has moved on by its length
             "expires_at": datetime.fromtimestamp(_months_later(start), UTC),
             "compute_ms": 0}
        )  # fmt: skip
    upsert(session, table_of(CacheSummary), rows, key=("cachekey",),
           update=("payload", "computed_at", "expires_at"))  # fmt: skip
    keep = [month_key(start) for start in months.counts]
    session.execute(
        delete(CacheSummary).where(
            CacheSummary.cachekey.like(f"{PREFIX}%"), CacheSummary.cachekey.not_in(keep)
        )
    )
    write_mark(session, LAST_ID, months.last_id)
    write_mark(session, FIRST_ID, months.first_id)
    write_mark(session, UNTIL, months.until)


def _months_later(start: int, months: int = 12) -> int:
    for _ in range(months):
        start = _next_month(start)
    return start


def activity_trend(
    months: ActivityMonths, members: dict[int, set[int]], starts: list[int]
) -> dict[Scope, dict[str, Any]]:
    """Per month: events and distinct active users, site-wide and per company."""
    companies_of: dict[int, list[int]] = defaultdict(list)
    for company, users in members.items():
        for user in users:
            companies_of[user].append(company)
    results: dict[Scope, dict[str, Any]] = defaultdict(lambda: empty_trend(starts))
    for index, start in enumerate(starts):
        for user, events in months.counts.get(start, {}).items():
            if not events:
                continue
            for scope in (SITE, *companies_of.get(user, ())):
                results[scope]["events"][index] += events
                results[scope]["active_users"][index] += 1
    return dict(results)
