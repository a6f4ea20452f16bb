"""SCORM deep analytics: per learner and activity, from either tracking layout.

Moodle ≤ 4.2 keeps one `scorm_scoes_track` row per CMI element; 4.3+ keeps `scorm_attempt`,
`scorm_element` and `scorm_scoes_value` (NOTES.md §3). Both are read as the same
(user, scorm, sco, attempt, element, value, timemodified) rows, so every figure is computed
once. Updates are incremental: a run finds the (scorm, user) pairs with tracking written since
the high-water mark and recomputes only those pairs, from all their tracks, so an incremental
run ends exactly where a full recompute would.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select, tuple_

from common.analytics.state import read_mark, write_mark
from common.analytics.upsert import upsert
from common.appdb import AppDB
from common.models.analytics import ScormSummary
from common.models.base import table_of, utcnow
from common.moodle import MoodleSource
from common.tenancy import TenantScope, scoped

MARK = "scorm_summary.last_timemodified"
# Tracks are written at the end of a request; one whose timemodified is a little older than
# the newest seen may still commit after a run. Pairs are recomputed whole, so rereading them
# costs time, never correctness.
OVERLAP_S = 300
PAIR_BATCH = 300

_INTERACTION = re.compile(r"^cmi\.interactions\.(\d+)\.")
_SCORM12_TIME = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")
_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def duration_seconds(value: str | None) -> float:
    """A SCORM 1.2 `HH:MM:SS.ss` or SCORM 2004 `PT1H2M3.5S` time in seconds (0 if unparsable)."""
    return parse_duration(value) or 0.0


def parse_duration(value: str | None) -> float | None:
    """A SCORM 1.2 `HH:MM:SS.ss` or SCORM 2004 `PT1H2M3.5S` time in seconds; None if it is
    neither."""
    if not value:
        return None
    value = value.strip()
    match = _SCORM12_TIME.match(value)
    if match:
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    match = _ISO_DURATION.match(value)
    if match and value not in ("P", "PT"):
        parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
        return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    return None


def _statuses(elements: dict[str, str]) -> tuple[str, str]:
    """(completion, success) of one SCO's elements, SCORM 1.2 or 2004."""
    lesson = elements.get("cmi.core.lesson_status")
    if lesson is not None:
        return {
            "passed": ("completed", "passed"),
            "failed": ("completed", "failed"),
            "completed": ("completed", "unknown"),
            "incomplete": ("incomplete", "unknown"),
            "browsed": ("incomplete", "unknown"),
            "not attempted": ("not attempted", "unknown"),
        }.get(lesson, ("unknown", "unknown"))
    return (
        elements.get("cmi.completion_status", "unknown"),
        elements.get("cmi.success_status", "unknown"),
    )


@dataclass
class _Attempt:
    scos: dict[int, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))


@dataclass
class LearnerScorm:
    """All tracking of one learner in one SCORM activity, folded into the summary figures."""

    scormid: int
    userid: int
    attempts: dict[int, _Attempt] = field(default_factory=lambda: defaultdict(_Attempt))
    lasttracked: int = 0

    def add(self, scoid: int, attempt: int, element: str, value: str | None, when: int) -> None:
        self.attempts[attempt].scos[scoid][element] = value or ""
        self.lasttracked = max(self.lasttracked, when or 0)

    def figures(self) -> dict[str, Any]:
        total = 0.0
        best: float | None = None
        suspend = False
        interactions = 0
        for attempt in self.attempts.values():
            for elements in attempt.scos.values():
                time_value = elements.get("cmi.core.total_time") or elements.get("cmi.total_time")
                if not time_value:
                    time_value = elements.get("cmi.core.session_time") or elements.get(
                        "cmi.session_time"
                    )
                total += duration_seconds(time_value)
                raw = elements.get("cmi.core.score.raw") or elements.get("cmi.score.raw")
                if raw:
                    try:
                        best = max(best or float("-inf"), float(raw))
                    except ValueError:
                        pass
                suspend = suspend or bool(elements.get("cmi.suspend_data"))
                interactions += len(
                    {m.group(1) for e in elements if (m := _INTERACTION.match(e)) is not None}
                )
        last = self.attempts[max(self.attempts)]
        statuses = [_statuses(elements) for elements in last.scos.values()]
        completion = _worst([c for c, _ in statuses], ("not attempted", "incomplete", "unknown"))
        success = _worst([s for _, s in statuses], ("failed", "unknown"))
        count = len(self.attempts)
        return {
            "scormid": self.scormid,
            "userid": self.userid,
            "attempts": count,
            "completion_status": completion,
            "success_status": success,
            "best_score": best,
            "has_suspend_data": suspend,
            "interactions": interactions,
            "total_time_s": int(total + 0.5),
            "avg_attempt_time_s": int(total / count + 0.5) if count else 0,
            "lasttracked": self.lasttracked,
        }


def _worst(values: list[str], order: tuple[str, ...]) -> str:
    """The first of `order` any SCO has, else their common value (completed, passed)."""
    for value in order:
        if value in values:
            return value
    return values[0] if values else "unknown"


def track_rows(source: MoodleSource, layout: str) -> Select[Any]:
    """(userid, scormid, scoid, attempt, element, value, timemodified) in either layout."""
    t = source.tables
    if layout == "track":
        tr = t.scorm_scoes_track
        return select(tr.c.userid, tr.c.scormid, tr.c.scoid, tr.c.attempt, tr.c.element,
                      tr.c.value, tr.c.timemodified)  # fmt: skip
    a, v, e = t.scorm_attempt, t.scorm_scoes_value, t.scorm_element
    return (
        select(
            a.c.userid,
            a.c.scormid,
            v.c.scoid,
            a.c.attempt,
            e.c.element.label("element"),
            v.c.value,
            v.c.timemodified,
        )  # fmt: skip
        .select_from(a)
        .join(v, v.c.attemptid == a.c.id)
        .join(e, e.c.id == v.c.elementid)
    )


def _changed_pairs(source: MoodleSource, layout: str, since: int) -> tuple[list[Any], int]:
    """(scormid, userid) pairs with tracking at or after `since`, and the newest time seen."""
    rows = track_rows(source, layout).subquery()
    query = (
        select(rows.c.scormid, rows.c.userid, func.max(rows.c.timemodified))
        .where(rows.c.timemodified >= since)
        .group_by(rows.c.scormid, rows.c.userid)
    )
    with source.engine.connect() as conn:
        found = conn.execute(query).all()
    newest = max((int(r[2] or 0) for r in found), default=0)
    return [(int(r[0]), int(r[1])) for r in found], newest


def _fold(rows: Iterable[Any]) -> Iterator[LearnerScorm]:
    learners: dict[tuple[int, int], LearnerScorm] = {}
    for r in rows:
        key = (r.scormid, r.userid)
        learner = learners.get(key)
        if learner is None:
            learner = learners[key] = LearnerScorm(r.scormid, r.userid)
        learner.add(r.scoid, r.attempt, r.element, r.value, r.timemodified)
    yield from learners.values()


def _course_of(source: MoodleSource, scorm_ids: Iterable[int]) -> dict[int, int]:
    scorm = source.tables.scorm
    ids = sorted(set(scorm_ids))
    found: dict[int, int] = {}
    with source.engine.connect() as conn:
        for offset in range(0, len(ids), 1000):
            chunk = ids[offset : offset + 1000]
            query = select(scorm.c.id, scorm.c.course).where(scorm.c.id.in_(chunk))
            found.update((int(i), int(c)) for i, c in conn.execute(query))
    return found


@dataclass
class ScormRun:
    layout: str | None
    pairs: int = 0
    full: bool = False


def update_scorm_summary(appdb: AppDB, source: MoodleSource, *, full: bool = False) -> ScormRun:
    """Bring `manireports_scorm_summary` up to date from the high-water mark (or from scratch
    with `full`); a site without SCORM tables has nothing to do."""
    layout = source.features().scorm_layout
    run = ScormRun(layout, full=full)
    if layout is None:
        return run
    with appdb.transaction() as session:
        mark = 0 if full else read_mark(session, MARK)
    pairs, newest = _changed_pairs(source, layout, max(0, mark - OVERLAP_S) if mark else 0)
    query = track_rows(source, layout).subquery()
    summaries: list[dict[str, Any]] = []
    with source.engine.connect() as conn:
        if full or not mark:
            rows = conn.execute(select(query).order_by(query.c.userid, query.c.scormid))
            summaries = [learner.figures() for learner in _fold(rows)]
        else:
            for offset in range(0, len(pairs), PAIR_BATCH):
                chunk = pairs[offset : offset + PAIR_BATCH]
                rows = conn.execute(
                    select(query).where(tuple_(query.c.scormid, query.c.userid).in_(chunk))
                )
                summaries += [learner.figures() for learner in _fold(rows)]
    courses = _course_of(source, (s["scormid"] for s in summaries))
    now = utcnow()
    for summary in summaries:
        summary["courseid"] = courses.get(summary["scormid"], 0)
        summary["timemodified"] = now
    with appdb.transaction() as session:
        if full:
            session.execute(table_of(ScormSummary).delete())
        upsert(
            session,
            table_of(ScormSummary),
            summaries,
            key=("scormid", "userid"),
            update=[c for c in summaries[0] if c not in ("scormid", "userid")] if summaries else (),
        )
        write_mark(session, MARK, max(mark, newest))
    run.pairs = len(summaries)
    return run


def attempt_tracking(
    source: MoodleSource, scope: TenantScope, *, userid: int, scormid: int, attempt: int
) -> list[dict[str, Any]]:
    """One attempt's tracking, SCO by SCO in package order: title and element values (none
    for a learner or package outside ``scope``)."""
    layout = source.features().scorm_layout
    if layout is None:
        return []
    rows = track_rows(source, layout).subquery()
    scoes = source.tables.scorm_scoes
    query = select(rows).where(
        rows.c.userid == userid, rows.c.scormid == scormid, rows.c.attempt == attempt
    )
    with source.engine.connect() as conn:
        elements: dict[int, dict[str, str]] = defaultdict(dict)
        for r in conn.execute(scoped(query.order_by(rows.c.element), scope, source)):
            elements[r.scoid][r.element] = r.value or ""
        sco_titles = (
            select(scoes.c.id, scoes.c.title)
            .where(scoes.c.scorm == scormid)
            .order_by(scoes.c.sortorder, scoes.c.id)
        )
        titles = dict(conn.execute(scoped(sco_titles, scope, source)).all())
    order = [sco for sco in titles if sco in elements] + sorted(set(elements) - set(titles))
    return [{"scoid": sco, "title": titles.get(sco, ""), "elements": elements[sco]}
            for sco in order]  # fmt: skip
