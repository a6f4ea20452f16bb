"""Heartbeats: what a beat on the bus holds, and merging a batch of them into sessions.

The web tier stamps each accepted beat with the server's time and publishes it to
`mr.heartbeat`, alone or (group commit) with the beats that arrived at the same moment in one
message `{"beats": [...]}`; the aggregator merges batches of messages into
`manireports_usertime_sessions` and the daily seconds. Beats carry no counter, only a time:
merging a time that is already covered changes nothing, so duplicated, reordered or
redelivered beats cannot double-count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from common.analytics.timelines import group_times, load_timelines, save_timelines, window_for

SUBJECT = "mr.heartbeat"
MAX_ID = 2**53  # ids are JSON numbers; Moodle's are BIGINT(10) anyway


class InvalidBeat(ValueError):
    """A beat that cannot be applied; the message names the field."""


@dataclass(frozen=True)
class Beat:
    id: str
    userid: int
    courseid: int
    cmid: int
    time: int  # Unix seconds, stamped by the web tier

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "u": self.userid, "c": self.courseid, "m": self.cmid,
                "t": self.time}  # fmt: skip

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Beat:
        beat_id = payload.get("id")
        if not isinstance(beat_id, str) or not 1 <= len(beat_id) <= 64:
            raise InvalidBeat("id: a string of 1..64 characters is required")
        return cls(
            id=beat_id,
            userid=positive_id(payload.get("u"), "u"),
            courseid=positive_id(payload.get("c"), "c"),
            cmid=positive_id(payload.get("m", 0), "m", allow_zero=True),
            time=positive_id(payload.get("t"), "t"),
        )


def beats_in(payload: Mapping[str, Any]) -> tuple[list[Beat], list[str]]:
    """The beats of one message (a single beat or a group), and why any were unusable."""
    items = payload.get("beats")
    if items is None:
        items = [payload]
    elif not isinstance(items, list):
        return [], ["beats: a list is required"]
    beats, problems = [], []
    for item in items:
        try:
            if not isinstance(item, Mapping):
                raise InvalidBeat("beat: an object is required")
            beats.append(Beat.from_payload(item))
        except InvalidBeat as exc:
            problems.append(str(exc))
    return beats, problems


def positive_id(value: object, name: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidBeat(f"{name}: a whole number is required")
    if not (0 if allow_zero else 1) <= value < MAX_ID:
        raise InvalidBeat(f"{name}: {value} is out of range")
    return value


def apply_beats(session: Session, beats: Iterable[Beat], gap_s: int) -> int:
    """Merge beats into heartbeat sessions and daily seconds, in the caller's transaction.
    Returns the number of session rows written."""
    events = [(b.userid, b.courseid, b.cmid, b.time) for b in beats]
    if not events:
        return 0
    since, until = window_for([e[3] for e in events], gap_s)
    grouped = group_times(events)
    timelines = load_timelines(
        session, grouped, estimated=False, since=since, until=until, lock=True
    )
    for key, by_activity in grouped.items():
        for cmid, times in by_activity.items():
            timelines[key].merge(cmid, times, gap_s)
    return save_timelines(session, timelines, estimated=False, gap_s=gap_s)
