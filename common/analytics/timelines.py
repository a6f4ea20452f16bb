"""A user's sessions in one course, held in memory while new activity is merged into them.

Both time sources use this: heartbeat batches (sessions per activity, `estimated` false) and
the log estimate (one session chain per course, `estimated` true). A timeline is loaded for a
window of time, new activity times are merged in, and what changed is written back in bulk:
new sessions inserted, grown ones updated, ones swallowed by a merge deleted, and the daily
seconds of every date the change can reach recomputed from the whole window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import bindparam, delete, select, tuple_, update
from sqlalchemy.orm import Session

from common.analytics.intervals import (
    DAY_S,
    Span,
    dates_between,
    day_start,
    merge_spans,
    seconds_by_date,
    utc_date,
)
from common.analytics.state import next_daily_write
from common.analytics.upsert import insert_many, upsert
from common.models.analytics import UsertimeDaily, UsertimeSession
from common.models.base import table_of, utcnow

CourseKey = tuple[int, int]  # (userid, courseid)
KEY_BATCH = 400


def to_datetime(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def to_timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass
class StoredSession:
    id: int | None
    cmid: int
    first: int
    last: int
    dirty: bool = False
    dead: bool = False


@dataclass
class Timeline:
    """Sessions of one (user, course) that may touch the window being worked on."""

    sessions: list[StoredSession] = field(default_factory=list)
    touched: set[date] = field(default_factory=set)

    def merge(self, cmid: int, times: Iterable[int], gap_s: int) -> None:
        """Merge activity times of one activity; marks the dates the change can reach."""
        self.merge_spans(cmid, ((t, t) for t in set(times)), gap_s)

    def merge_spans(self, cmid: int, spans: Iterable[Span], gap_s: int) -> None:
        """Merge stretches of activity (already sessions of their own) of one activity."""
        new = list(spans)
        if not new:
            return
        mine = sorted(
            (s for s in self.sessions if s.cmid == cmid and not s.dead),
            key=lambda s: (s.first, s.last),
        )
        items: list[tuple[int, int, StoredSession | None]] = [(s.first, s.last, s) for s in mine]
        items += [(first, last, None) for first, last in new]
        items.sort(key=lambda item: (item[0], item[1]))
        cluster: list[tuple[int, int, StoredSession | None]] = []
        last_end = 0
        for item in items:
            if cluster and item[0] - last_end > gap_s:
                self._settle(cmid, cluster, gap_s)
                cluster = []
            cluster.append(item)
            last_end = item[1] if len(cluster) == 1 else max(last_end, item[1])
        if cluster:
            self._settle(cmid, cluster, gap_s)

    def _settle(
        self, cmid: int, cluster: list[tuple[int, int, StoredSession | None]], gap_s: int
    ) -> None:
        stored = [s for _, _, s in cluster if s is not None]
        if len(stored) == len(cluster):
            return  # existing sessions no new time reached
        first = min(item[0] for item in cluster)
        last = max(item[1] for item in cluster)
        # New activity only adds coverage within gap_s of itself (it extends a session or
        # bridges two), so only the dates of those neighbourhoods can change.
        new_first = min(item[0] for item in cluster if item[2] is None)
        new_last = max(item[1] for item in cluster if item[2] is None)
        self.touched.update(dates_between(new_first - gap_s, new_last + gap_s))
        if not stored:
            self.sessions.append(StoredSession(None, cmid, first, last, dirty=True))
            return
        keep, *swallowed = stored
        if (keep.first, keep.last) != (first, last):
            keep.first, keep.last, keep.dirty = first, last, True
        for other in swallowed:
            other.dead = True

    @property
    def saved(self) -> bool:
        """Whether every session has its stored id: `save_timelines` leaves the sessions it
        inserts without one, so a timeline must be loaded again before merging into it again."""
        return all(s.id is not None for s in self.sessions)

    def seconds_on(self, days: Iterable[date], gap_s: int) -> dict[date, int]:
        """Seconds of activity on each of `days` (dates with no activity are left out).

        Activities of one course may overlap (two tabs) and follow each other closely; the
        course's time is the union of their sessions with gaps up to `gap_s` bridged."""
        spans: list[Span] = [(s.first, s.last) for s in self.sessions if not s.dead]
        per_date = seconds_by_date(merge_spans(spans, gap_s))
        return {day: per_date[day] for day in days if day in per_date}


def load_timelines(
    session: Session,
    keys: Iterable[CourseKey],
    *,
    estimated: bool,
    since: int,
    until: int,
    lock: bool = False,
) -> dict[CourseKey, Timeline]:
    """Sessions of each (user, course) ending at or after `since` and starting by `until`.

    `lock` takes row locks on MariaDB (SELECT ... FOR UPDATE) so two aggregator replicas
    merging into the same sessions serialize; SQLite serializes writers by itself."""
    keys = sorted(set(keys))
    timelines: dict[CourseKey, Timeline] = {key: Timeline() for key in keys}
    t = UsertimeSession
    window = select(t.id, t.userid, t.courseid, t.cmid, t.sessionstart, t.lastbeat).where(
        t.estimated == estimated,
        t.lastbeat >= to_datetime(since),
        t.sessionstart <= to_datetime(until),
    )
    if len(keys) > KEY_BATCH and not lock:
        # Many keys: one read of the window, filtered here. Databases serve each batch's
        # query from the `lastbeat` index too, reading the same window once per batch.
        queries = [window]
    else:
        queries = [
            window.where(tuple_(t.userid, t.courseid).in_(keys[offset : offset + KEY_BATCH]))
            for offset in range(0, len(keys), KEY_BATCH)
        ]
    for query in queries:
        if lock:
            query = query.with_for_update()
        for row in session.execute(query):
            if (row.userid, row.courseid) not in timelines:
                continue
            timelines[(row.userid, row.courseid)].sessions.append(
                StoredSession(
                    row.id, row.cmid, to_timestamp(row.sessionstart), to_timestamp(row.lastbeat)
                )
            )
    return timelines


def save_timelines(
    session: Session,
    timelines: dict[CourseKey, Timeline],
    *,
    estimated: bool,
    gap_s: int,
) -> int:
    """Write what changed in the timelines, then the daily seconds of the dates it touched.
    Returns the number of sessions written. Call inside the transaction that loaded them."""
    inserts: list[tuple[CourseKey, StoredSession]] = []
    updates: list[dict[str, object]] = []
    deletes: list[int] = []
    for key, timeline in timelines.items():
        for stored in timeline.sessions:
            if stored.dead:
                if stored.id is not None:
                    deletes.append(stored.id)
            elif stored.id is None:
                inserts.append((key, stored))
            elif stored.dirty:
                updates.append(_session_values(key, stored) | {"b_id": stored.id})
    t = table_of(UsertimeSession)
    if deletes:
        for offset in range(0, len(deletes), KEY_BATCH):
            chunk = deletes[offset : offset + KEY_BATCH]
            session.execute(delete(t).where(t.c.id.in_(chunk)))
    if updates:
        statement = (
            update(t)
            .where(t.c.id == bindparam("b_id"))
            .values(
                sessionstart=bindparam("sessionstart"),
                lastbeat=bindparam("lastbeat"),
                duration=bindparam("duration"),
            )
        )
        session.connection().execute(statement, updates)
    # New sessions go in as one plain bulk insert, without reading their ids back (RETURNING
    # costs more than the insert): a caller merging into these timelines again loads them
    # anew (`Timeline.saved`).
    insert_many(
        session, t, [_session_values(key, s) | {"estimated": estimated} for key, s in inserts]
    )
    for timeline in timelines.values():
        for stored in timeline.sessions:
            stored.dirty = False
        timeline.sessions = [s for s in timeline.sessions if not s.dead]
    write_daily(session, timelines, estimated=estimated, gap_s=gap_s)
    return len(inserts) + len(updates) + len(deletes)


def _session_values(key: CourseKey, stored: StoredSession) -> dict[str, object]:
    return {
        "userid": key[0],
        "courseid": key[1],
        "cmid": stored.cmid,
        "sessionstart": to_datetime(stored.first),
        "lastbeat": to_datetime(stored.last),
        "duration": stored.last - stored.first,
    }


def write_daily(
    session: Session, timelines: dict[CourseKey, Timeline], *, estimated: bool, gap_s: int
) -> None:
    now = utcnow()
    rows = []
    for (userid, courseid), timeline in timelines.items():
        if not timeline.touched:
            continue
        for day, seconds in sorted(timeline.seconds_on(timeline.touched, gap_s).items()):
            rows.append(
                {"userid": userid, "courseid": courseid, "date": day, "seconds": seconds,
                 "estimated": estimated, "timemodified": now}
            )  # fmt: skip
        timeline.touched = set()
    if not rows:
        return
    write = next_daily_write(session)
    upsert(
        session,
        table_of(UsertimeDaily),
        [row | {"writeseq": write} for row in rows],
        key=("userid", "courseid", "date", "estimated"),
        update=("seconds", "timemodified", "writeseq"),
    )


def window_for(times: Sequence[int], gap_s: int) -> tuple[int, int]:
    """The load window that new activity at `times` needs: every session touching a date the
    activity can reach (earlier sessions that day count towards its daily seconds), and those
    within gap_s of such a date (they can bridge into it)."""
    first_day = utc_date(min(times) - gap_s)
    last_day = utc_date(max(times) + gap_s)
    return day_start(first_day) - gap_s, day_start(last_day) + DAY_S + gap_s


def group_times(
    events: Iterable[tuple[int, int, int, int]],
) -> dict[CourseKey, dict[int, list[int]]]:
    """(userid, courseid, cmid, time) events -> {(userid, courseid): {cmid: [times]}}."""
    grouped: dict[CourseKey, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for userid, courseid, cmid, moment in events:
        grouped[(userid, courseid)][cmid].append(moment)
    return grouped
