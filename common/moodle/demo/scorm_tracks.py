"""SCORM tracking data in either layout (NOTES.md §3).

A SCO session writes CMI elements: SCORM 1.2 (`cmi.core.lesson_status`, `HH:MM:SS.ss` times) or
SCORM 2004 (`cmi.completion_status` + `cmi.success_status`, ISO-8601 `PT1H2M3S` times), plus
Moodle's `x.start.time`. Moodle ≤ 4.2 keeps one `scorm_scoes_track` row per element; 4.3+ keeps
`scorm_attempt` + `scorm_element` (a dictionary of names) + `scorm_scoes_value`.
"""

from __future__ import annotations

import random
from itertools import count
from typing import Any, NamedTuple

from common.moodle.demo.activities import SCORM_12
from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.events import (
    MODULE_VIEWED,
    SCO_LAUNCHED,
    Where,
    log_row,
    other_json,
    scorm_element_submitted,
)
from common.moodle.demo.model import HOUR, Activity, Person
from common.moodle.tables import ScormLayout

TRACK_COLUMNS = (
    "id", "userid", "scormid", "scoid", "attempt", "element", "value", "timemodified",
)  # fmt: skip
ATTEMPT_COLUMNS = ("id", "userid", "scormid", "attempt")
ELEMENT_COLUMNS = ("id", "element")
VALUE_COLUMNS = ("id", "scoid", "attemptid", "elementid", "value", "timemodified")


def scorm12_time(centiseconds: int) -> str:
    seconds, hundredths = divmod(centiseconds, 100)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{hundredths:02d}"


def scorm2004_time(centiseconds: int) -> str:
    seconds, hundredths = divmod(centiseconds, 100)
    hours, minutes, seconds = seconds // 3600, seconds // 60 % 60, seconds % 60
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{seconds}.{hundredths:02d}S" if hundredths else f"{seconds}S")


def sco_values(
    version: str,
    *,
    started: int,
    completed: bool,
    passed: bool | None,
    score: float | None,
    session_cs: int,
    total_cs: int,
) -> list[tuple[str, str]]:
    """The (element, value) pairs a SCO session leaves; `passed` None means not assessed."""
    values = [("x.start.time", str(started))]
    if version == SCORM_12:
        if passed is not None and completed:
            status = "passed" if passed else "failed"
        else:
            status = "completed" if completed else "incomplete"
        values.append(("cmi.core.lesson_status", status))
        if score is not None:
            values += [("cmi.core.score.raw", f"{score:g}"), ("cmi.core.score.max", "100")]
            values.append(("cmi.core.score.min", "0"))
        values.append(("cmi.core.session_time", scorm12_time(session_cs)))
        values.append(("cmi.core.total_time", scorm12_time(total_cs)))
        return values
    values.append(("cmi.completion_status", "completed" if completed else "incomplete"))
    success = "unknown" if passed is None else ("passed" if passed else "failed")
    values.append(("cmi.success_status", success))
    if score is not None:
        values += [("cmi.score.raw", f"{score:g}"), ("cmi.score.scaled", f"{score / 100:g}")]
        values += [("cmi.score.max", "100"), ("cmi.score.min", "0")]
    values.append(("cmi.session_time", scorm2004_time(session_cs)))
    values.append(("cmi.total_time", scorm2004_time(total_cs)))
    return values


class ScormTracks:
    """Collects SCO sessions and writes them in the site's layout."""

    def __init__(self, layout: ScormLayout) -> None:
        self.layout = layout
        self.track_rows: list[tuple[Any, ...]] = []
        self.attempt_rows: list[tuple[int, int, int, int]] = []
        self.value_rows: list[tuple[Any, ...]] = []
        self.element_ids: dict[str, int] = {}
        self._row_ids = count(1)
        self._attempt_ids: dict[tuple[int, int, int], int] = {}

    def attempt_id(self, user_id: int, scorm_id: int, attempt: int) -> int:
        """scorm_attempt.id in the 4.3+ layout; the attempt number itself before it."""
        if self.layout == "track":
            return attempt
        key = (user_id, scorm_id, attempt)
        if key not in self._attempt_ids:
            self._attempt_ids[key] = len(self.attempt_rows) + 1
            self.attempt_rows.append((self._attempt_ids[key], user_id, scorm_id, attempt))
        return self._attempt_ids[key]

    def record(
        self,
        user_id: int,
        scorm_id: int,
        sco_id: int,
        attempt: int,
        values: list[tuple[str, str]],
        when: int,
    ) -> dict[str, int]:
        """Store one SCO session; returns the row id of each element (events point at them)."""
        row_ids = {}
        if self.layout == "track":
            for element, value in values:
                row_ids[element] = row_id = next(self._row_ids)
                self.track_rows.append(
                    (row_id, user_id, scorm_id, sco_id, attempt, element, value, when)
                )
            return row_ids
        attempt_id = self.attempt_id(user_id, scorm_id, attempt)
        for element, value in values:
            element_id = self.element_ids.setdefault(element, len(self.element_ids) + 1)
            row_ids[element] = row_id = next(self._row_ids)
            self.value_rows.append((row_id, sco_id, attempt_id, element_id, value, when))
        return row_ids

    def write(self, writer: BulkWriter) -> None:
        if self.layout == "track":
            writer.insert("scorm_scoes_track", TRACK_COLUMNS, self.track_rows)
            return
        writer.insert("scorm_attempt", ATTEMPT_COLUMNS, self.attempt_rows)
        writer.insert(
            "scorm_element",
            ELEMENT_COLUMNS,
            ((element_id, element) for element, element_id in self.element_ids.items()),
        )
        writer.insert("scorm_scoes_value", VALUE_COLUMNS, self.value_rows)


class ScormResult(NamedTuple):
    end: int
    events: list[tuple[Any, ...]]
    grade: float


class ScormLearning:
    """Learners working through SCORM packages: sessions per SCO, tracks and events."""

    def __init__(self, rng: random.Random, tracks: ScormTracks) -> None:
        self.rng = rng
        self.tracks = tracks
        self._status_submitted = scorm_element_submitted("status_submitted", tracks.layout)
        self._score_submitted = scorm_element_submitted("scoreraw_submitted", tracks.layout)

    def attempts(
        self, person: Person, scorm: Activity, where: Where, start: int, horizon: int
    ) -> ScormResult | None:
        """Completed attempts from `start`; None when they would end after `horizon`."""
        rng = self.rng
        plan = []
        for attempt in range(1, 2 + (rng.random() < 0.15)):
            for sco_id in scorm.sco_ids:
                session_cs = rng.randint(5 * 60, 40 * 60) * 100 + rng.randint(0, 99)
                plan.append((attempt, sco_id, start, session_cs))
                start += session_cs // 100 + rng.randint(60, 180)
            start += rng.randint(1, 48) * HOUR
        end = plan[-1][2] + plan[-1][3] // 100 + 2
        if end >= horizon:
            return None
        events = [self._viewed(person, scorm, where, plan[0][2] - 20)]
        best = 0.0
        last_attempt = plan[-1][0]
        for attempt, sco_id, began, session_cs in plan:
            score = float(round(min(100, max(10, rng.gauss(55 + 40 * person.engagement, 15)))))
            if attempt == last_attempt:
                # Done means done: the final attempt passes, which completion requires.
                score = max(score, 60.0)
            best = max(best, score)
            values = sco_values(
                scorm.scorm_version, started=began, completed=True, passed=score >= 60,
                score=score, session_cs=session_cs, total_cs=session_cs,
            )  # fmt: skip
            events += self._session(
                person, scorm, where, sco_id, attempt, began, session_cs, values
            )
        return ScormResult(end, events, best)

    def unfinished(
        self, person: Person, scorm: Activity, where: Where, start: int
    ) -> list[tuple[Any, ...]]:
        """A first session left incomplete, without a score."""
        session_cs = self.rng.randint(2 * 60, 15 * 60) * 100
        values = sco_values(
            scorm.scorm_version, started=start, completed=False, passed=None, score=None,
            session_cs=session_cs, total_cs=session_cs,
        )  # fmt: skip
        events = [self._viewed(person, scorm, where, start - 20)]
        return events + self._session(
            person, scorm, where, scorm.sco_ids[0], 1, start, session_cs, values
        )

    def _viewed(self, person: Person, scorm: Activity, where: Where, when: int) -> tuple[Any, ...]:
        kind = MODULE_VIEWED["scorm"]
        return log_row(kind, when, person.id, where, objectid=scorm.instance, ip=person.ip)

    def _session(
        self,
        person: Person,
        scorm: Activity,
        where: Where,
        sco_id: int,
        attempt: int,
        began: int,
        session_cs: int,
        values: list[tuple[str, str]],
    ) -> list[tuple[Any, ...]]:
        ended = began + session_cs // 100
        row_ids = self.tracks.record(person.id, scorm.instance, sco_id, attempt, values, ended)
        position = scorm.sco_ids.index(sco_id) + 1
        launched = {"loadedcontent": f"sco{position}/index.html", "instanceid": scorm.instance}
        events = [
            log_row(SCO_LAUNCHED, began, person.id, where, objectid=sco_id,
                    other=other_json(launched), ip=person.ip),
        ]  # fmt: skip
        attempt_ref = self.tracks.attempt_id(person.id, scorm.instance, attempt)
        for element, value in values:
            if element.endswith(("lesson_status", "completion_status")):
                kind = self._status_submitted
            elif element.endswith("score.raw"):
                kind = self._score_submitted
            else:
                continue
            other = {"attemptid": attempt_ref, "cmielement": element, "cmivalue": value}
            events.append(
                log_row(kind, ended, person.id, where, objectid=row_ids[element],
                        other=other_json(other), ip=person.ip)
            )  # fmt: skip
        return events
