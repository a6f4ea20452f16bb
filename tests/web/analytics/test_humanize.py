"""Times and durations as people read them: the Jinja filters and the SCORM elements that
hold times."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from common.analytics.scorm_values import element_value
from web.humanize import duration_text, exact_text, relative_text, zone_named

NOW = 1_795_000_000  # 2026-11-18 11:06:40 UTC


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (0, "0 s"), (59.4, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h"),
     (12_000, "3 h 20 min"), (86_400, "1 day"), (2 * 86_400 + 4 * 3600 + 59, "2 days 4 h"),
     (7 * 86_400 - 1, "6 days 23 h"), (7 * 86_400, "168 h"), (5_857_200, "1,627 h"),
     (-5, "0 s")],
)  # fmt: skip
def test_durations_read_as_hours_and_minutes(seconds, text):
    assert duration_text(seconds) == text


@pytest.mark.parametrize(
    ("ago", "text"),
    [(10, "just now"), (25 * 60, "25 min ago"), (3 * 3600 + 59, "3 h ago"),
     (30 * 3600, "yesterday"), (5 * 86_400, "5 days ago"), (-2 * 3600, "in 2 h"),
     (-3 * 86_400, "in 3 days")],
)  # fmt: skip
def test_moments_read_relative_to_now(ago, text):
    moment = datetime.fromtimestamp(NOW - ago, UTC)
    assert relative_text(moment, NOW, ZoneInfo("UTC")) == text


def test_old_moments_read_as_the_date_in_the_viewers_zone():
    # 23:30 UTC on 1 Jan is already 2 Jan in Tokyo.
    moment = datetime(2026, 1, 1, 23, 30, tzinfo=UTC)
    assert relative_text(moment, NOW, ZoneInfo("Asia/Tokyo")) == "2 Jan 2026"
    assert relative_text(moment, NOW, ZoneInfo("UTC")) == "1 Jan 2026"


def test_the_exact_time_is_in_the_viewers_zone_and_nothing_is_never():
    assert exact_text(NOW, ZoneInfo("Asia/Kolkata")) == "18 Nov 2026, 16:36 IST"
    assert exact_text(NOW, ZoneInfo("UTC")) == "18 Nov 2026, 11:06 UTC"
    assert exact_text(None, ZoneInfo("UTC")) == "never"
    assert exact_text(0, ZoneInfo("UTC")) == "never"  # Moodle's 0: never


def test_moodle_zone_names_fall_back_to_utc():
    assert zone_named("Europe/Paris") == ZoneInfo("Europe/Paris")
    for name in ("99", "", None, "Mars/Olympus", "../etc/passwd"):
        assert zone_named(name) == ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("element", "value", "kind", "seconds"),
    [("cmi.core.session_time", "00:12:30", "duration", 750),
     ("cmi.core.total_time", "0001:02:03.5", "duration", 3723.5),
     ("cmi.session_time", "PT1H2M", "duration", 3720),
     ("cmi.total_time", "P1DT2H", "duration", 93_600),
     ("cmi.interactions.3.latency", "PT4.5S", "duration", 4.5),
     ("x.start.time", "1793298597", "time", 1793298597),
     ("cmi.core.session_time", "soon", "text", None),  # not a time: shown as stored
     ("x.start.time", "yesterday", "text", None),
     ("cmi.core.lesson_status", "passed", "text", None),
     ("cmi.suspend_data", "00:12:30", "text", None)],
)  # fmt: skip
def test_scorm_elements_that_hold_times(element, value, kind, seconds):
    found = element_value(element, value)
    assert (found.kind, found.seconds, found.raw) == (kind, seconds, value)
