"""Time on task estimated from `logstore_standard_log`, where heartbeats are missing.

The session-gap method of Moodle's dedication tools: a user's events in a course closer than
the session timeout are one session, lasting from its first to its last event. Sessions and
daily seconds are stored like heartbeat ones but with `estimated` set, so every figure built
from them says it is an estimate. The log is read from a high-water mark (the last log id
done) in id order, which on a live site is time order; each chunk's sessions, daily seconds
and mark commit together, so an interrupted run resumes where it stopped, and a rerun or an
incremental run gives exactly what one full run gives.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session

from common.analytics.intervals import day_start, utc_date
from common.analytics.state import read_mark, write_mark
from common.analytics.timelines import (
    CourseKey,
    Timeline,
    load_timelines,
    save_timelines,
    window_for,
)
from common.appdb import AppDB
from common.models.analytics import UsertimeSession
from common.moodle import MoodleSource

log = logging.getLogger(__name__)

MARK = "log_estimate.last_log_id"
CHUNK_IDS = 500_000
DAY_S = 86_400


@dataclass
class EstimateRun:
    spans_read: int = 0  # sessions found in the new log rows (each one or more events)
    sessions_written: int = 0
    last_log_id: int = 0


def _counted(source: MoodleSource, low_id: int, high_id: int) -> Any:
    """Events that count as activity in a course, ids in (low_id, high_id]: a real user (not
    a guest, not "logged in as"), not anonymous, in a course."""
    lg = source.tables.logstore_standard_log
    return select(lg.c.userid, lg.c.courseid, lg.c.timecreated).where(
        lg.c.id > low_id,
        lg.c.id <= high_id,
        lg.c.userid > 1,  # 0: not logged in; 1: the guest user (NOTES.md §6)
        lg.c.courseid > 0,
        lg.c.anonymous == 0,
        lg.c.realuserid.is_(None),
    )


def session_spans(source: MoodleSource, low_id: int, high_id: int, gap_s: int) -> Any:
    """The chunk's own sessions, found by the database: an event more than gap_s after the
    previous one of the same user and course starts a session; a running sum of those starts
    numbers the sessions; each becomes (userid, courseid, first, last). The database sorts
    and sends sessions, not events, which is most of the work of a full run."""
    events = _counted(source, low_id, high_id).subquery()
    window = {"partition_by": (events.c.userid, events.c.courseid),
              "order_by": events.c.timecreated}  # fmt: skip
    previous = func.lag(events.c.timecreated).over(**window)
    starts = select(
        events.c.userid, events.c.courseid, events.c.timecreated,
        case((events.c.timecreated - previous <= gap_s, 0), else_=1).label("starts"),
    ).subquery()  # fmt: skip
    numbered = select(
        starts.c.userid, starts.c.courseid, starts.c.timecreated,
        func.sum(starts.c.starts).over(
            partition_by=(starts.c.userid, starts.c.courseid), order_by=starts.c.timecreated,
            rows=(None, 0),
        ).label("session"),
    ).subquery()  # fmt: skip
    return select(
        numbered.c.userid, numbered.c.courseid,
        func.min(numbered.c.timecreated).label("first"),
        func.max(numbered.c.timecreated).label("last"),
    ).group_by(numbered.c.userid, numbered.c.courseid, numbered.c.session)  # fmt: skip


def _id_ranges(source: MoodleSource, after_id: int) -> Iterator[tuple[int, int]]:
    lg = source.tables.logstore_standard_log
    with source.engine.connect() as conn:
        top = int(conn.scalar(select(func.max(lg.c.id))) or 0)
    for low in range(after_id, top, CHUNK_IDS):
        yield low, min(low + CHUNK_IDS, top)


class _TimelineCache:
    """The run's timelines, so a chunk does not reload what the previous one wrote. A cached
    timeline covers activity from `since` on; a chunk reaching further back reloads."""

    def __init__(self, db_had_estimates: bool):
        self.timelines: dict[CourseKey, Timeline] = {}
        self.since: dict[CourseKey, int] = {}
        self.db_had_estimates = db_had_estimates

    def prepare(self, session: Session, keys: list[CourseKey], since: int, until: int) -> None:
        stale = [k for k in keys if k not in self.timelines or self.since[k] > since]
        # Keys first seen in a run that started on an empty table have nothing stored yet.
        to_load = [k for k in stale if self.db_had_estimates or k in self.timelines]
        fresh = set(stale) - set(to_load)
        loaded = load_timelines(session, to_load, estimated=True, since=since, until=until)
        for key in fresh:
            loaded[key] = Timeline()
        for key, timeline in loaded.items():
            self.timelines[key] = timeline
            self.since[key] = since

    def forget_before(self, keys: list[CourseKey], moment: int) -> None:
        """Drop sessions ended before `moment`: later chunks (time order) will not reach them."""
        for key in keys:
            timeline = self.timelines[key]
            timeline.sessions = [s for s in timeline.sessions if s.last >= moment]
            self.since[key] = max(self.since[key], moment)


def estimate_time_from_log(appdb: AppDB, source: MoodleSource, *, gap_s: int) -> EstimateRun:
    """Read the log from the high-water mark on and merge it into estimated sessions."""
    run = EstimateRun()
    with appdb.transaction() as session:
        mark = read_mark(session, MARK)
        had = bool(session.scalar(select(exists().where(UsertimeSession.estimated.is_(True)))))
    cache = _TimelineCache(db_had_estimates=had)
    run.last_log_id = mark
    for low, high in _id_ranges(source, mark):
        with source.engine.connect() as conn:
            spans = conn.execute(session_spans(source, low, high, gap_s)).all()
        with appdb.transaction() as session:
            if spans:
                grouped: dict[CourseKey, list[tuple[int, int]]] = defaultdict(list)
                for row in spans:
                    grouped[(row.userid, row.courseid)].append((row.first, row.last))
                since, until = window_for([r.first for r in spans] + [r.last for r in spans],
                                          gap_s)  # fmt: skip
                keys = list(grouped)
                cache.prepare(session, keys, since, until)
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
