"""Time on task estimated from `logstore_standard_log`, where heartbeats are missing.

The session-gap method of Moodle's dedication tools: a user's events in a course closer than
the session timeout are one session, lasting from its first to its last event. Sessions and
daily seconds are stored like heartbeat ones but with `estimated` set, so every figure built
from them says it is an estimate. The log is read from a high-water mark (the last log id
done) in id order, which on a live site is time order; each chunk's sessions, daily seconds
and mark commit together, so an interrupted run resumes where it stopped, and a rerun or an
incremental run gives exactly what one full run gives.

The first run, on a table with no estimates yet, has nothing stored to merge into: it streams
the whole log's sessions in (user, course) order, adds up their daily seconds as each
(user, course) ends, and bulk-inserts both without reading anything back. It commits at user
boundaries and records the last user done, so an interrupted first run resumes there too.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Row, case, exists, func, select
from sqlalchemy.orm import Session

from common.analytics.intervals import day_start, seconds_by_date, utc_date
from common.analytics.state import next_daily_write, read_mark, write_mark
from common.analytics.timelines import (
    CourseKey,
    Timeline,
    load_timelines,
    save_timelines,
    to_datetime,
    window_for,
)
from common.analytics.upsert import insert_many
from common.appdb import AppDB
from common.models.analytics import UsertimeDaily, UsertimeSession
from common.models.base import table_of, utcnow
from common.moodle import MoodleSource

log = logging.getLogger(__name__)

MARK = "log_estimate.last_log_id"
FIRST_TOP = "log_estimate.first_run.top"  # the last log id an unfinished first run reads
FIRST_USER = "log_estimate.first_run.userid"  # the last user whose sessions it stored
CHUNK_IDS = 500_000
FIRST_RUN_BATCH = 20_000  # sessions per commit (and per executemany) of a first run
DAY_S = 86_400


@dataclass
class EstimateRun:
    spans_read: int = 0  # sessions found in the new log rows (each one or more events)
    sessions_written: int = 0
    last_log_id: int = 0


def _counted(source: MoodleSource, low_id: int, high_id: int, after_user: int = 0) -> Any:
    """Events that count as activity in a course, ids in (low_id, high_id]: a real user (not
    a guest, not "logged in as"), not anonymous, in a course; users after `after_user` only."""
    lg = source.tables.logstore_standard_log
    return select(lg.c.id, lg.c.userid, lg.c.courseid, lg.c.timecreated).where(
        lg.c.id > low_id,
        lg.c.id <= high_id,
        lg.c.userid > max(1, after_user),  # 0: not logged in; 1: the guest user (NOTES.md §6)
        lg.c.courseid > 0,
        lg.c.anonymous == 0,
        lg.c.realuserid.is_(None),
    )


def session_spans(
    source: MoodleSource, low_id: int, high_id: int, gap_s: int, after_user: int = 0
) -> Any:
    """The chunk's own sessions, found by the database: an event more than gap_s after the
    previous one of the same user and course starts a session; a running sum of those starts
    numbers the sessions; each becomes (userid, courseid, first, last). The database sorts
    and sends sessions, not events, which is most of the work of a full run."""
    events = _counted(source, low_id, high_id, after_user).subquery()
    # Events of the same second are ordered by id in both windows: with ties ordered one way
    # by LAG and another by the running sum, a session start could be counted on the wrong
    # row (MariaDB does order ties differently).
    previous = func.lag(events.c.timecreated).over(
        partition_by=(events.c.userid, events.c.courseid),
        order_by=(events.c.timecreated, events.c.id),
    )
    starts = select(
        events.c.id, events.c.userid, events.c.courseid, events.c.timecreated,
        case((events.c.timecreated - previous <= gap_s, 0), else_=1).label("starts"),
    ).subquery()  # fmt: skip
    numbered = select(
        starts.c.userid, starts.c.courseid, starts.c.timecreated,
        func.sum(starts.c.starts).over(
            partition_by=(starts.c.userid, starts.c.courseid),
            order_by=(starts.c.timecreated, starts.c.id), rows=(None, 0),
        ).label("session"),
    ).subquery()  # fmt: skip
    return select(
        numbered.c.userid, numbered.c.courseid,
        func.min(numbered.c.timecreated).label("first"),
        func.max(numbered.c.timecreated).label("last"),
    ).group_by(numbered.c.userid, numbered.c.courseid, numbered.c.session)  # fmt: skip


def _top_id(source: MoodleSource) -> int:
    lg = source.tables.logstore_standard_log
    with source.engine.connect() as conn:
        return int(conn.scalar(select(func.max(lg.c.id))) or 0)


def _id_ranges(source: MoodleSource, after_id: int) -> Iterator[tuple[int, int]]:
    top = _top_id(source)
    for low in range(after_id, top, CHUNK_IDS):
        yield low, min(low + CHUNK_IDS, top)


def _has_estimates(session: Session) -> bool:
    estimated = (UsertimeSession.estimated.is_(True), UsertimeDaily.estimated.is_(True))
    return any(bool(session.scalar(select(exists().where(e)))) for e in estimated)


def _first_run(
    appdb: AppDB,
    source: MoodleSource,
    run: EstimateRun,
    *,
    low: int,
    high: int,
    after_user: int,
    gap_s: int,
) -> None:
    """Store the sessions and daily seconds of log ids (low, high] into empty tables.

    The database sends sessions ordered by user and course, so a (user, course)'s daily
    seconds are complete when the next one starts; batches commit at user boundaries with
    the last user done, and the mark moves to `high` with the last batch."""
    spans = session_spans(source, low, high, gap_s, after_user)
    found = spans.selected_columns
    query = spans.order_by(found.userid, found.courseid, found.first)
    sessions: list[dict[str, Any]] = []
    daily: list[dict[str, Any]] = []
    key: CourseKey | None = None
    totals: dict[int, int] = {}

    def close_key() -> None:
        if key is not None:
            daily.extend(
                {"userid": key[0], "courseid": key[1], "date": _date_of(day),
                 "seconds": seconds, "estimated": True}
                for day, seconds in totals.items()
            )  # fmt: skip
            totals.clear()

    def commit(marks: dict[str, int]) -> None:
        with appdb.transaction() as session:
            insert_many(session, table_of(UsertimeSession), sessions)
            # Numbered as every write of daily rows is, for the refreshes that follow them.
            stamp = {"timemodified": utcnow(), "writeseq": next_daily_write(session)}
            insert_many(session, table_of(UsertimeDaily), [row | stamp for row in daily])
            for name, value in marks.items():
                write_mark(session, name, value)
        run.sessions_written += len(sessions)
        sessions.clear()
        daily.clear()

    for userid, courseid, first, last in _fetched_alongside(source, query):
        if key is None or (userid, courseid) != key:
            close_key()
            if key is not None and userid != key[0] and len(sessions) >= FIRST_RUN_BATCH:
                commit({FIRST_TOP: high, FIRST_USER: key[0]})
            key = (userid, courseid)
        run.spans_read += 1
        sessions.append(
            {"userid": userid, "courseid": courseid, "cmid": 0, "estimated": True,
             "sessionstart": to_datetime(first), "lastbeat": to_datetime(last),
             "duration": last - first}
        )  # fmt: skip
        day = first // DAY_S
        if last // DAY_S == day:
            totals[day] = totals.get(day, 0) + last - first
        else:  # across midnight: split as every other figure is
            for date_, seconds in seconds_by_date([(first, last)]).items():
                index = day_start(date_) // DAY_S
                totals[index] = totals.get(index, 0) + seconds
    close_key()
    commit({MARK: high, FIRST_TOP: 0, FIRST_USER: 0})
    run.last_log_id = high


def _fetched_alongside(source: MoodleSource, query: Any) -> Iterator[Any]:
    """The query's rows, fetched in batches by a thread while the caller works on the previous
    batch: the source database computes (the drivers let go of the GIL while it does) as the
    app DB is written. A failure on either side stops both."""
    batches: queue.Queue[Sequence[Row[Any]] | BaseException] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def put(item: Sequence[Row[Any]] | BaseException) -> None:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def fetch() -> None:
        try:
            with source.engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(query)
                while not stop.is_set():
                    batch = result.fetchmany(FIRST_RUN_BATCH)
                    put(batch)
                    if not batch:
                        return
        except BaseException as exc:  # handed to the caller, which raises it
            put(exc)

    reader = threading.Thread(target=fetch, name="log-estimate-read", daemon=True)
    reader.start()
    try:
        while True:
            item = batches.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield from item
    finally:
        stop.set()
        reader.join()


@functools.cache
def _date_of(day_index: int) -> date:
    return utc_date(day_index * DAY_S)


class _TimelineCache:
    """The run's timelines, so a chunk does not reload what the previous one wrote. A cached
    timeline covers activity from `since` on; a chunk reaching further back, or reaching one
    with sessions inserted since it was loaded (`Timeline.saved`), reloads."""

    def __init__(self) -> None:
        self.timelines: dict[CourseKey, Timeline] = {}
        self.since: dict[CourseKey, int] = {}

    def prepare(self, session: Session, keys: list[CourseKey], since: int, until: int) -> None:
        stale = [
            k
            for k in keys
            if k not in self.timelines or self.since[k] > since or not self.timelines[k].saved
        ]
        loaded = load_timelines(session, stale, estimated=True, since=since, until=until)
        for key, timeline in loaded.items():
            self.timelines[key] = timeline
            self.since[key] = since

    def forget_before(self, keys: list[CourseKey], moment: int) -> None:
        """Drop sessions ended before `moment`: later chunks (time order) will not reach them."""
        for key in keys:
            timeline = self.timelines[key]
            timeline.sessions = [s for s in timeline.sessions if s.last >= moment]
            self.since[key] = max(self.since[key], moment)


def _by_window(
    grouped: dict[CourseKey, list[tuple[int, int]]], gap_s: int
) -> dict[tuple[int, int], list[CourseKey]]:
    """The (user, course)s grouped by the window of sessions their own new spans need
    (`window_for`): after a day of log, most need only the sessions near that day, and the
    few active just after midnight those of the day before as well, so the run loads those
    rather than the whole previous day for every learner."""
    by_window: dict[tuple[int, int], list[CourseKey]] = defaultdict(list)
    for key, spans in grouped.items():
        first, last = min(f for f, _ in spans), max(last for _, last in spans)
        by_window[window_for([first, last], gap_s)].append(key)
    return by_window


def estimate_time_from_log(appdb: AppDB, source: MoodleSource, *, gap_s: int) -> EstimateRun:
    """Read the log from the high-water mark on and merge it into estimated sessions."""
    run = EstimateRun()
    with appdb.transaction() as session:
        mark = read_mark(session, MARK)
        first_top, first_user = read_mark(session, FIRST_TOP), read_mark(session, FIRST_USER)
        had = _has_estimates(session)
    if first_top or not had:
        top = first_top or _top_id(source)
        _first_run(appdb, source, run, low=mark, high=top, after_user=first_user, gap_s=gap_s)
        log.info("log estimate (first run): %d sessions", run.sessions_written)
        return run
    cache = _TimelineCache()
    run.last_log_id = mark
    for low, high in _id_ranges(source, mark):
        with source.engine.connect() as conn:
            spans = conn.execute(session_spans(source, low, high, gap_s)).all()
        with appdb.transaction() as session:
            if spans:
                grouped: dict[CourseKey, list[tuple[int, int]]] = defaultdict(list)
                for row in spans:
                    grouped[(row.userid, row.courseid)].append((row.first, row.last))
                keys = list(grouped)
                for (since, until), alike in _by_window(grouped, gap_s).items():
                    cache.prepare(session, alike, since, until)
                chunk = {key: cache.timelines[key] for key in keys}
                for key, new in grouped.items():
                    chunk[key].merge_spans(0, new, gap_s)
                run.sessions_written += save_timelines(session, chunk, estimated=True,
                                                       gap_s=gap_s)  # fmt: skip
            write_mark(session, MARK, high)
        run.last_log_id = high
        if spans:
            run.spans_read += len(spans)
            newest = max(r.last for r in spans)
            # Keep a day of margin for events logged slightly out of order.
            cache.forget_before(keys, day_start(utc_date(newest - gap_s)) - gap_s - DAY_S)
    log.info("log estimate: %d sessions read, %d written", run.spans_read, run.sessions_written)
    return run
