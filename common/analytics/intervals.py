"""Sessions as spans of activity, and how many seconds of them fall on each UTC date.

A session is the span from its first to its last beat (or log event); consecutive events more
than the session timeout apart belong to different sessions. This is the session-gap method of
Moodle's dedication tools. Because a session is described by its two ends only, merging the same
beat twice, or beats in any order, gives the same sessions: redelivery cannot double-count.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

DAY_S = 86_400

Span = tuple[int, int]  # (first, last) Unix seconds, first <= last


def merge_spans(spans: Iterable[Span], gap_s: int) -> list[Span]:
    """Join spans whose gap is at most `gap_s`; returns disjoint spans in time order."""
    merged: list[list[int]] = []
    for first, last in sorted(spans):
        if merged and first - merged[-1][1] <= gap_s:
            if last > merged[-1][1]:
                merged[-1][1] = last
        else:
            merged.append([first, last])
    return [(first, last) for first, last in merged]


def utc_date(timestamp: int) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def seconds_by_date(spans: Iterable[Span]) -> dict[date, int]:
    """Seconds of each span on each UTC date it touches, split at midnight. A date touched
    only by a point (a single event) gets 0 seconds: it still was an active day."""
    totals: dict[date, int] = {}
    for first, last in spans:
        start = first
        while True:
            midnight = (start // DAY_S + 1) * DAY_S
            end = min(last, midnight)
            day = utc_date(start)
            totals[day] = totals.get(day, 0) + (end - start)
            if last < midnight:
                break
            start = midnight
            if start == last:
                # A span ending exactly at midnight does not make the next date active.
                break
    return totals


def dates_between(first: int, last: int) -> list[date]:
    """Every UTC date from the one holding `first` to the one holding `last`."""
    start_day = first // DAY_S
    return [utc_date(day * DAY_S) for day in range(start_day, last // DAY_S + 1)]
