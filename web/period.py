"""The `?from=&to=` date filter of list pages (audit log, report runs): whole days in the
viewer's timezone, both ends inclusive, as the half-open span [since, until) to query."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from flask import request

from common.errors import FieldError


def date_arg(name: str) -> date | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FieldError(name, f"{raw[:40]!r} is not a date (YYYY-MM-DD)", status=400) from None


def requested_period(zone: tzinfo) -> tuple[datetime | None, datetime | None]:
    """From the first day's midnight to the midnight after the last day, in `zone`."""
    first, last = date_arg("from"), date_arg("to")
    since = datetime.combine(first, time.min, zone) if first else None
    until = None
    if last is not None and last < date.max:
        until = datetime.combine(last + timedelta(days=1), time.min, zone)
    return since, until
