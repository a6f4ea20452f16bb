"""Report schedules: when they run (`timing`)."""

from common.schedules.timing import (
    FREQUENCIES,
    MAX_COUNT,
    WEEKDAYS,
    Recurrence,
    next_run,
    next_runs,
    parse_after,
    parse_count,
    parse_recurrence,
)

__all__ = [
    "FREQUENCIES",
    "MAX_COUNT",
    "WEEKDAYS",
    "Recurrence",
    "next_run",
    "next_runs",
    "parse_after",
    "parse_count",
    "parse_recurrence",
]
