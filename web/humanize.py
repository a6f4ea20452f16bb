"""Jinja filters that write times and durations as people read them, in the viewer's timezone.

- `value|duration` — seconds as "45 s", "12 min", "3 h 20 min", "2 days 4 h", from a week
  on "1,627 h"; None as "–".
- `value|when` — a moment (Unix seconds, or an aware datetime) as a `<time>` element reading
  "just now", "25 min ago", "3 h ago", "yesterday", "5 days ago" (beyond 30 days: the date),
  with the exact time in the viewer's Moodle timezone as its title; nothing (None, 0) as
  "never".
- `value|exact_time` — the same moment as plain text: "18 Nov 2026, 14:05 CET".

Moodle's `user.timezone` names the zone; "99" (the site default), an empty or unknown name
mean UTC, as in the reports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app, has_request_context
from markupsafe import Markup

from common.timezones import SITE_DEFAULT

MINUTE, HOUR, DAY, WEEK = 60, 3600, 86_400, 7 * 86_400
RELATIVE_DAYS = 30


def zone_named(name: str | None) -> ZoneInfo:
    if name in (None, "", SITE_DEFAULT):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _viewer_zone() -> ZoneInfo:
    from web.auth.guards import optional_viewer

    viewer = optional_viewer() if has_request_context() else None
    return zone_named(viewer.timezone if viewer else None)


def _now() -> float:
    # The app's clock (tests fix it), not the wall clock.
    return float(current_app.extensions["manireports"].clock())


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    total = max(0, int(round(float(seconds))))
    if total < MINUTE:
        return f"{total} s"
    if total < HOUR:
        return f"{total // MINUTE} min"
    if total < DAY:
        hours, minutes = divmod(total // MINUTE, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if total >= WEEK:
        return f"{total // HOUR:,} h"  # totals over a course or a month read best in hours
    days, hours = divmod(total // HOUR, 24)
    unit = "day" if days == 1 else "days"
    return f"{days} {unit} {hours} h" if hours else f"{days} {unit}"


def _moment(value: int | float | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None  # Moodle's 0: never
    return datetime.fromtimestamp(float(value), UTC)


def exact_text(value: int | float | datetime | None, zone: ZoneInfo | None = None) -> str:
    moment = _moment(value)
    if moment is None:
        return "never"
    local = moment.astimezone(zone or _viewer_zone())
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def relative_text(moment: datetime, now: float, zone: ZoneInfo) -> str:
    delta = int(now - moment.timestamp())
    ahead = delta < 0
    gap = abs(delta)
    if gap < MINUTE:
        return "just now"
    if gap < HOUR:
        amount = f"{gap // MINUTE} min"
    elif gap < DAY:
        amount = f"{gap // HOUR} h"
    elif gap < 2 * DAY and not ahead:
        return "yesterday"
    elif gap < RELATIVE_DAYS * DAY:
        days = gap // DAY
        amount = f"{days} day" if days == 1 else f"{days} days"
    else:
        local = moment.astimezone(zone)
        return f"{local.day} {local:%b %Y}"
    return f"in {amount}" if ahead else f"{amount} ago"


def when_markup(value: int | float | datetime | None, never: str = "never") -> Markup:
    moment = _moment(value)
    if moment is None:
        return Markup("{}").format(never)
    zone = _viewer_zone()
    local = moment.astimezone(zone)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        local.isoformat(timespec="seconds"),
        exact_text(moment, zone),
        relative_text(moment, _now(), zone),
    )


def duration_markup(seconds: float | None) -> Markup:
    """The duration, with its exact length (h:mm:ss) as the title."""
    if seconds is None:
        return Markup("–")
    total = max(0, int(round(float(seconds))))
    exact = f"{total // HOUR}:{total // MINUTE % 60:02d}:{total % 60:02d}"
    return Markup('<span title="{}">{}</span>').format(exact, duration_text(total))


def install_filters(app: Flask) -> None:
    app.jinja_env.filters["duration"] = duration_markup
    app.jinja_env.filters["when"] = when_markup
    app.jinja_env.filters["exact_time"] = exact_text
