"""Moodle timezone strings to UTC offsets (user.timezone; '99' means the site default)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SITE_DEFAULT = "99"


def utc_offset_s(timezone: str | None, at: int, site_timezone: str = "UTC") -> int:
    """The zone's offset at Unix time `at`; unknown zones fall back to UTC."""
    name = site_timezone if timezone in (None, "", SITE_DEFAULT) else timezone
    try:
        zone = ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    offset = datetime.fromtimestamp(at, UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0
