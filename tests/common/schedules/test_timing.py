"""Next runs of report schedules, against values worked out by hand.

The zone rules relied on (tzdata):
- Europe/London: GMT (+00) in winter, BST (+01) in summer. 2027: BST starts Sun 28 March at
  01:00Z (wall clock 01:00 GMT jumps to 02:00 BST: 01:00-01:59 local does not exist) and ends
  Sun 31 October at 01:00Z (02:00 BST falls back to 01:00 GMT: 01:00-01:59 local happens twice,
  first as BST = 00:xxZ, then as GMT = 01:xxZ).
- America/New_York: EST (-05) / EDT (-04). 2027: EDT starts Sun 14 March at 07:00Z (02:00 EST
  jumps to 03:00 EDT: 02:00-02:59 does not exist) and ends Sun 7 November at 06:00Z (02:00 EDT
  falls back to 01:00 EST: 01:00-01:59 happens twice, first EDT = 05:xxZ, then EST = 06:xxZ).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import FieldError
from common.schedules import Recurrence, next_run, next_runs, parse_recurrence
from common.schedules.timing import parse_after, parse_count


def z(text: str) -> datetime:
    """'2027-03-28T01:00' as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def runs(after: str, count: int, **fields: str) -> list[datetime]:
    return next_runs(parse_recurrence(**fields), z(after), count)


def fields_of(error: FieldError) -> list[str]:
    return [e.field for e in error.errors]


# --- daily --------------------------------------------------------------------------------


def test_nine_in_london_is_nine_z_in_winter_and_eight_z_in_summer():
    # 27 Mar: GMT, 09:00 - 0h = 09:00Z. 28 Mar: BST from 01:00Z, 09:00 - 1h = 08:00Z.
    assert runs("2027-03-26T12:00", 3, frequency="daily", at="09:00", tz="Europe/London") == [
        z("2027-03-27T09:00"),
        z("2027-03-28T08:00"),
        z("2027-03-29T08:00"),
    ]
    # Back in October: 30 Oct BST 08:00Z; 31 Oct GMT again from 01:00Z, so 09:00Z.
    assert runs("2027-10-29T12:00", 3, frequency="daily", at="09:00", tz="Europe/London") == [
        z("2027-10-30T08:00"),
        z("2027-10-31T09:00"),
        z("2027-11-01T09:00"),
    ]


def test_london_time_skipped_by_spring_forward_runs_at_the_end_of_the_gap():
    # 01:30 on 28 Mar 2027 does not exist (01:00 GMT -> 02:00 BST). The first valid minute
    # after it is 02:00 BST = 02:00 - 1h = 01:00Z. Either side: 27 Mar 01:30 GMT = 01:30Z,
    # 29 Mar 01:30 BST = 00:30Z.
    assert runs("2027-03-26T12:00", 3, frequency="daily", at="01:30", tz="Europe/London") == [
        z("2027-03-27T01:30"),
        z("2027-03-28T01:00"),
        z("2027-03-29T00:30"),
    ]


def test_london_time_repeated_by_fall_back_runs_once_at_its_first_occurrence():
    # 01:30 on 31 Oct 2027 happens as BST (00:30Z) and again as GMT (01:30Z): only 00:30Z runs.
    # 30 Oct is BST: 00:30Z; 1 Nov is GMT: 01:30Z.
    assert runs("2027-10-29T12:00", 3, frequency="daily", at="01:30", tz="Europe/London") == [
        z("2027-10-30T00:30"),
        z("2027-10-31T00:30"),
        z("2027-11-01T01:30"),
    ]
    # Right after the first occurrence, the repeat (01:30Z) is not a second run.
    assert next_run(
        parse_recurrence(frequency="daily", at="01:30", tz="Europe/London"), z("2027-10-31T00:30")
    ) == z("2027-11-01T01:30")


def test_new_york_time_skipped_by_spring_forward_runs_at_the_end_of_the_gap():
    # 13 Mar 02:30 EST = 02:30 + 5h = 07:30Z. 14 Mar 02:30 does not exist (02:00 EST -> 03:00
    # EDT at 07:00Z): first valid minute after it is 03:00 EDT = 07:00Z. 15 Mar 02:30 EDT = 06:30Z.
    assert runs("2027-03-12T12:00", 3, frequency="daily", at="02:30", tz="America/New_York") == [
        z("2027-03-13T07:30"),
        z("2027-03-14T07:00"),
        z("2027-03-15T06:30"),
    ]


def test_new_york_time_repeated_by_fall_back_runs_once_at_its_first_occurrence():
    # 6 Nov 01:30 EDT = 01:30 + 4h = 05:30Z. 7 Nov 01:30 is EDT (05:30Z) then EST (06:30Z): only
    # 05:30Z. 8 Nov 01:30 EST = 06:30Z.
    assert runs("2027-11-05T12:00", 3, frequency="daily", at="01:30", tz="America/New_York") == [
        z("2027-11-06T05:30"),
        z("2027-11-07T05:30"),
        z("2027-11-08T06:30"),
    ]


def test_a_whole_skipped_day_runs_at_the_first_minute_after_it():
    # Samoa skipped 30 Dec 2011, jumping from -10 to +14 at 2011-12-30T10:00Z (Dec 29 24:00
    # -10 = Dec 31 00:00 +14). 29 Dec 09:00 -10 = 19:00Z; 30 Dec 09:00 is in the gap, so
    # 31 Dec 00:00 +14 = 30 Dec 10:00Z; 31 Dec 09:00 +14 = 30 Dec 19:00Z.
    assert runs("2011-12-28T20:00", 3, frequency="daily", at="09:00", tz="Pacific/Apia") == [
        z("2011-12-29T19:00"),
        z("2011-12-30T10:00"),
        z("2011-12-30T19:00"),
    ]


# --- weekly -------------------------------------------------------------------------------


def test_several_weekdays_across_new_york_spring_forward():
    # Wed 10 Mar 2027 09:00 EST = 14:00Z (after is 09:00Z, before it). Fri 12 Mar 14:00Z.
    # Mon 15 Mar and Wed 17 Mar are EDT: 09:00 + 4h = 13:00Z.
    assert runs(
        "2027-03-10T09:00",
        4,
        frequency="weekly",
        weekdays="mon,wed,fri",
        at="09:00",
        tz="America/New_York",
    ) == [
        z("2027-03-10T14:00"),
        z("2027-03-12T14:00"),
        z("2027-03-15T13:00"),
        z("2027-03-17T13:00"),
    ]


def test_weekdays_given_repeated_unordered_or_twice_mean_the_same_days():
    one = parse_recurrence(frequency="weekly", weekdays="mon,wed", at="09:00", tz="UTC")
    again = parse_recurrence(
        frequency="weekly", weekdays=["Wed", " mon ", "wed"], at="9:00", tz="UTC"
    )
    assert one == again and one.weekdays == (0, 2)
    # Mon 1 Mar 2027, Wed 3 Mar, Mon 8 Mar.
    assert next_runs(one, z("2027-02-28T12:00"), 3) == [
        z("2027-03-01T09:00"),
        z("2027-03-03T09:00"),
        z("2027-03-08T09:00"),
    ]


def test_weekly_sunday_across_both_london_changes():
    weekly = dict(frequency="weekly", weekdays="sun", at="01:30", tz="Europe/London")
    # 21 Mar GMT 01:30Z; 28 Mar in the gap -> 02:00 BST = 01:00Z; 4 Apr BST 00:30Z.
    assert runs("2027-03-20T00:00", 3, **weekly) == [
        z("2027-03-21T01:30"),
        z("2027-03-28T01:00"),
        z("2027-04-04T00:30"),
    ]
    # 24 Oct BST 00:30Z; 31 Oct first occurrence (BST) 00:30Z only; 7 Nov GMT 01:30Z.
    assert runs("2027-10-23T00:00", 3, **weekly) == [
        z("2027-10-24T00:30"),
        z("2027-10-31T00:30"),
        z("2027-11-07T01:30"),
    ]


def test_weekly_sunday_across_both_new_york_changes():
    # 7 Mar 02:30 EST = 07:30Z; 14 Mar gap -> 03:00 EDT = 07:00Z; 21 Mar 02:30 EDT = 06:30Z.
    assert runs(
        "2027-03-06T00:00", 3, frequency="weekly", weekdays="sun", at="02:30", tz="America/New_York"
    ) == [z("2027-03-07T07:30"), z("2027-03-14T07:00"), z("2027-03-21T06:30")]
    # 31 Oct 01:30 EDT = 05:30Z; 7 Nov first occurrence EDT 05:30Z; 14 Nov EST = 06:30Z.
    assert runs(
        "2027-10-30T00:00", 3, frequency="weekly", weekdays="sun", at="01:30", tz="America/New_York"
    ) == [z("2027-10-31T05:30"), z("2027-11-07T05:30"), z("2027-11-14T06:30")]


# --- monthly ------------------------------------------------------------------------------


def test_day_31_runs_on_the_last_day_of_shorter_months():
    # 2027 is not a leap year: Jan 31, Feb 28, Mar 31, Apr 30, May 31.
    assert runs("2027-01-01T00:00", 5, frequency="monthly", day="31", at="09:00", tz="UTC") == [
        z("2027-01-31T09:00"),
        z("2027-02-28T09:00"),
        z("2027-03-31T09:00"),
        z("2027-04-30T09:00"),
        z("2027-05-31T09:00"),
    ]


def test_day_31_in_a_leap_february_is_the_29th():
    # 2028 is a leap year (divisible by 4, not a century). After exactly Jan 31 09:00 (a run,
    # so not repeated): Feb 29, Mar 31, Apr 30 - London: GMT in Feb (09:00Z), BST from 26 Mar
    # 2028 (last Sunday), so 08:00Z.
    assert runs(
        "2028-01-31T09:00", 3, frequency="monthly", day="31", at="09:00", tz="Europe/London"
    ) == [z("2028-02-29T09:00"), z("2028-03-31T08:00"), z("2028-04-30T08:00")]


def test_day_29_and_30_in_february_of_common_and_leap_years():
    # Feb 2027 has 28 days: the 29th and the 30th both run on the 28th; in 2028 on the 29th.
    for day in ("29", "30"):
        assert runs("2027-02-01T00:00", 1, frequency="monthly", day=day, at="00:00", tz="UTC") == [
            z("2027-02-28T00:00")
        ]
        assert runs("2028-02-01T00:00", 1, frequency="monthly", day=day, at="00:00", tz="UTC") == [
            z("2028-02-29T00:00")
        ]


def test_monthly_on_a_spring_forward_day_runs_after_the_gap():
    # 28 Mar 2027 01:30 London does not exist -> 02:00 BST = 01:00Z; 28 Apr 01:30 BST = 00:30Z.
    assert runs(
        "2027-03-01T00:00", 2, frequency="monthly", day="28", at="01:30", tz="Europe/London"
    ) == [z("2027-03-28T01:00"), z("2027-04-28T00:30")]


# --- cron ---------------------------------------------------------------------------------


def test_cron_in_london_across_spring_forward():
    # Same wall clock as the daily 01:30 test: 01:30Z, then 01:00Z (the gap's end), then 00:30Z.
    assert runs("2027-03-26T12:00", 3, frequency="cron", cron="30 1 * * *", tz="Europe/London") == [
        z("2027-03-27T01:30"),
        z("2027-03-28T01:00"),
        z("2027-03-29T00:30"),
    ]


def test_cron_minutes_inside_a_skipped_hour_run_once_at_its_end():
    # 01:00, 01:20, 01:40 London on 28 Mar 2027 all fall in the gap: one run at 02:00 BST =
    # 01:00Z. Then 29 Mar 01:00/01:20 BST = 00:00Z/00:20Z.
    assert runs(
        "2027-03-28T00:00", 3, frequency="cron", cron="*/20 1 * * *", tz="Europe/London"
    ) == [z("2027-03-28T01:00"), z("2027-03-29T00:00"), z("2027-03-29T00:20")]


def test_cron_minutes_inside_a_repeated_hour_run_once():
    # After 31 Oct 2027 00:00 BST (= 30 Oct 23:00Z): 01:00, 01:20, 01:40 BST = 00:00Z, 00:20Z,
    # 00:40Z; their GMT repeats (01:00Z, 01:20Z, 01:40Z) do not run; next 1 Nov 01:00 GMT.
    assert runs(
        "2027-10-30T23:00", 4, frequency="cron", cron="*/20 1 * * *", tz="Europe/London"
    ) == [
        z("2027-10-31T00:00"),
        z("2027-10-31T00:20"),
        z("2027-10-31T00:40"),
        z("2027-11-01T01:00"),
    ]


def test_hourly_cron_across_london_changes_keeps_the_wall_clock_rules():
    # (croniter 7.0.0's own zone handling gives 01:15Z as a second run on 31 Oct for
    # "15 1 * * *" and drops the skipped 01:30 below: these pin the rules, not croniter's.)
    # Spring, "30 * * * *" after 28 Mar 00:10Z: 00:30 GMT = 00:30Z; 01:30 is in the gap ->
    # 02:00 BST = 01:00Z; 02:30 BST = 01:30Z; 03:30 BST = 02:30Z.
    assert runs("2027-03-28T00:10", 4, frequency="cron", cron="30 * * * *", tz="Europe/London") == [
        z("2027-03-28T00:30"),
        z("2027-03-28T01:00"),
        z("2027-03-28T01:30"),
        z("2027-03-28T02:30"),
    ]
    # Fall, "0 * * * *" after 30 Oct 23:30Z (00:30 BST): 01:00 BST = 00:00Z; the repeated 01:00
    # (GMT, 01:00Z) does not run; 02:00 GMT = 02:00Z.
    assert runs("2027-10-30T23:30", 2, frequency="cron", cron="0 * * * *", tz="Europe/London") == [
        z("2027-10-31T00:00"),
        z("2027-10-31T02:00"),
    ]
    # "15 1 * * *": 31 Oct 01:15 BST = 00:15Z once; 1 Nov 01:15 GMT = 01:15Z.
    assert runs("2027-10-30T12:00", 2, frequency="cron", cron="15 1 * * *", tz="Europe/London") == [
        z("2027-10-31T00:15"),
        z("2027-11-01T01:15"),
    ]


def test_cron_in_new_york_across_both_changes():
    # Spring: 13 Mar 02:30 EST = 07:30Z; 14 Mar gap -> 03:00 EDT = 07:00Z; 15 Mar EDT 06:30Z.
    assert runs(
        "2027-03-12T12:00", 3, frequency="cron", cron="30 2 * * *", tz="America/New_York"
    ) == [z("2027-03-13T07:30"), z("2027-03-14T07:00"), z("2027-03-15T06:30")]
    # Fall: 6 Nov 01:30 EDT = 05:30Z; 7 Nov first occurrence 05:30Z only; 8 Nov EST 06:30Z.
    assert runs(
        "2027-11-05T12:00", 3, frequency="cron", cron="30 1 * * *", tz="America/New_York"
    ) == [z("2027-11-06T05:30"), z("2027-11-07T05:30"), z("2027-11-08T06:30")]


def test_cron_weekdays_in_new_york_switch_offset_over_the_weekend():
    # Fri 12 Mar 2027 09:00 EST = 14:00Z; Mon 15 Mar 09:00 EDT = 13:00Z (no runs Sat/Sun).
    assert runs(
        "2027-03-12T12:00", 2, frequency="cron", cron="0 9 * * mon-fri", tz="America/New_York"
    ) == [z("2027-03-12T14:00"), z("2027-03-15T13:00")]


def test_cron_on_leap_day_runs_every_four_years():
    # 29 Feb exists in 2028 and 2032 (leap years), not 2029-2031.
    assert runs("2027-01-01T00:00", 2, frequency="cron", cron="0 9 29 2 *", tz="UTC") == [
        z("2028-02-29T09:00"),
        z("2032-02-29T09:00"),
    ]


# --- strictly after -----------------------------------------------------------------------


def test_after_exactly_on_a_run_is_not_that_run():
    daily = parse_recurrence(frequency="daily", at="09:00", tz="Europe/London")
    cron = parse_recurrence(frequency="cron", cron="0 9 * * *", tz="Europe/London")
    for recurrence in (daily, cron):
        # 29 Mar 09:00 BST = 08:00Z is a run: after it, 30 Mar 08:00Z; a microsecond earlier,
        # the 29th itself.
        assert next_run(recurrence, z("2027-03-29T08:00")) == z("2027-03-30T08:00")
        just_before = z("2027-03-29T08:00") - timedelta(microseconds=1)
        assert next_run(recurrence, just_before) == z("2027-03-29T08:00")


def test_after_in_another_offset_and_results_in_utc():
    # 09:00+01:00 is 08:00Z, exactly the 29 Mar run: next is 30 Mar 08:00Z, given in UTC.
    after = datetime(2027, 3, 29, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    found = next_run(parse_recurrence(frequency="daily", at="09:00", tz="Europe/London"), after)
    assert found == z("2027-03-30T08:00") and found.utcoffset() == timedelta(0)


def test_a_thousand_runs_in_order_and_no_more():
    daily = parse_recurrence(frequency="daily", at="09:00", tz="UTC")
    found = next_runs(daily, z("2027-01-01T00:00"), 1000)
    # Day 1 is 1 Jan 2027; day 1000 is 999 days later.
    assert found[0] == z("2027-01-01T09:00") and found[-1] == z("2027-01-01T09:00") + timedelta(
        days=999
    )
    assert all(a < b for a, b in zip(found, found[1:], strict=False)) and len(found) == 1000


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        (dict(frequency="hourly", at="09:00"), "frequency", "one of daily"),
        (dict(frequency="", at="09:00"), "frequency", "required"),
        (dict(frequency="daily", at="24:00"), "at", "HH:MM"),
        (dict(frequency="daily", at="09:00:00"), "at", "HH:MM"),
        (dict(frequency="daily", at="9"), "at", "HH:MM"),
        (dict(frequency="daily"), "at", "needs a time of day"),
        (dict(frequency="weekly", at="09:00", weekdays="monday"), "weekdays", "not a weekday"),
        (dict(frequency="weekly", at="09:00"), "weekdays", "one or more weekdays"),
        (dict(frequency="daily", at="09:00", weekdays="mon"), "weekdays", "only a weekly"),
        (dict(frequency="monthly", at="09:00", day="0"), "day", "1 to 31"),
        (dict(frequency="monthly", at="09:00", day="32"), "day", "1 to 31"),
        (dict(frequency="monthly", at="09:00", day="-1"), "day", "1 to 31"),
        (dict(frequency="monthly", at="09:00"), "day", "needs a day"),
        (dict(frequency="daily", at="09:00", day="5"), "day", "only a monthly"),
        (dict(frequency="cron", cron="0 9 * * * 30"), "cron", "5 fields"),
        (dict(frequency="cron", cron="0 9 * *"), "cron", "5 fields"),
        (dict(frequency="cron", cron="@daily"), "cron", "5 fields"),
        (dict(frequency="cron", cron="61 9 * * *"), "cron", "not a valid cron expression"),
        (dict(frequency="cron", cron="0 9 * * funday"), "cron", "not a valid cron expression"),
        (dict(frequency="cron", cron="0 0 30 2 *"), "cron", "never matches"),
        (dict(frequency="cron", cron="H 9 * * *"), "cron", "hashed"),
        (dict(frequency="cron", cron="R 9 * * *"), "cron", "random"),
        (dict(frequency="cron"), "cron", "needs a cron expression"),
        (dict(frequency="cron", cron="0 9 * * *", at="09:00"), "at", "not used by a cron"),
        (dict(frequency="daily", at="09:00", cron="0 9 * * *"), "cron", "only a cron"),
    ],
)
def test_each_bad_field_is_named(fields, field, says):
    with pytest.raises(FieldError) as caught:
        parse_recurrence(tz="Europe/London", **fields)
    assert fields_of(caught.value) == [field] and says in caught.value.reason


@pytest.mark.parametrize(
    "zone",
    [
        "",
        "Mars/Olympus",
        "europe/london",
        "localtime",
        "../../etc/passwd",
        "Europe/London "[:-1] + "/",
    ],
)
def test_a_zone_that_is_not_iana_is_named(zone):
    with pytest.raises(FieldError) as caught:
        parse_recurrence(frequency="daily", at="09:00", tz=zone)
    assert fields_of(caught.value) == ["tz"]


def test_every_bad_field_is_named_at_once():
    with pytest.raises(FieldError) as caught:
        parse_recurrence(
            frequency="weekly",
            at="25:61",
            weekdays="mon,xyz",
            day="40",
            cron="* * * * * *",
            tz="Nowhere/City",
        )
    assert sorted(fields_of(caught.value)) == ["at", "cron", "day", "tz", "weekdays"]
    with pytest.raises(FieldError) as caught:
        parse_recurrence(frequency="sometimes", at="x", tz="")
    assert sorted(fields_of(caught.value)) == ["at", "frequency", "tz"]


def test_built_directly_it_is_checked_the_same_way_and_frozen():
    with pytest.raises(FieldError) as caught:
        Recurrence("monthly", "UTC", time(9, 0, 30), day=0)
    assert sorted(fields_of(caught.value)) == ["at", "day"]
    good = Recurrence("weekly", "UTC", time(9), weekdays=(4, 0, 4))
    assert good.weekdays == (0, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.tz = "Europe/London"  # type: ignore[misc]


@pytest.mark.parametrize(
    "fields",
    [
        dict(frequency="daily", at="07:05", tz="Europe/London"),
        dict(frequency="weekly", at="23:59", weekdays="sun,mon", tz="America/New_York"),
        dict(frequency="monthly", at="00:00", day="31", tz="UTC"),
        dict(frequency="cron", cron="0  9 * *   mon-fri", tz="Asia/Kolkata"),
    ],
)
def test_raw_fields_round_trip(fields):
    recurrence = parse_recurrence(**fields)
    assert parse_recurrence(**recurrence.as_raw()) == recurrence


def test_after_and_count_are_checked():
    daily = parse_recurrence(frequency="daily", at="09:00", tz="UTC")
    for after, count, field in [
        (datetime(2027, 1, 1), 1, "after"),  # naive: which instant is meant?
        (z("9500-01-01T00:00"), 1, "after"),
        (z("1800-01-01T00:00"), 1, "after"),
        (z("2027-01-01T00:00"), 0, "count"),
        (z("2027-01-01T00:00"), 1001, "count"),
        (z("2027-01-01T00:00"), True, "count"),
    ]:
        with pytest.raises(FieldError) as caught:
            next_runs(daily, after, count)
        assert caught.value.field == field
    with pytest.raises(FieldError, match="fewer than 1000 runs"):
        # 29 Feb every four years from 8999: the calendar ends in 9999 first.
        next_runs(
            parse_recurrence(frequency="cron", cron="0 0 29 2 *", tz="UTC"),
            z("8999-01-01T00:00"),
            1000,
        )


def test_raw_after_and_count():
    assert parse_after("2027-03-29T08:00:00Z") == z("2027-03-29T08:00")
    assert parse_after("2027-03-29T09:00:00+01:00") == z("2027-03-29T08:00")
    now = z("2027-01-01T00:00")
    assert parse_after(None, now=now) == now and parse_after("", now=now) == now
    for bad in ("2027-03-29", "2027-03-29T08:00", "yesterday"):
        with pytest.raises(FieldError) as caught:
            parse_after(bad)
        assert caught.value.field == "after"
    assert parse_count(None) == 5 and parse_count("1000") == 1000
    for bad in ("0", "1001", "-1", "x", "٣"):
        with pytest.raises(FieldError) as caught:
            parse_count(bad)
        assert caught.value.field == "count"


# --- properties over many zones and moments ------------------------------------------------

ZONES = ["Europe/London", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
         "Pacific/Apia", "Asia/Kolkata", "Europe/Dublin", "UTC"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 1, 15, 30, 45, 59]),
    after=st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
)
def test_daily_agrees_with_the_same_cron_and_keeps_the_wall_clock(zone, hour, minute, after):
    at = f"{hour:02d}:{minute:02d}"
    daily = next_runs(parse_recurrence(frequency="daily", at=at, tz=zone), after, 10)
    cron = parse_recurrence(frequency="cron", cron=f"{minute} {hour} * * *", tz=zone)
    assert daily == next_runs(cron, after, 10)
    assert daily[0] > after and all(a < b for a, b in zip(daily, daily[1:], strict=False))
    tzinfo = ZoneInfo(zone)
    for run in daily:
        local = run.astimezone(tzinfo)
        assert local.fold == 0  # never the repeat of a wall time
        if (local.hour, local.minute) != (hour, minute):
            # Only when the time did not exist that day: the run is the instant the clock
            # jumped forward (a second earlier the offset was smaller), later on the wall clock.
            earlier = (run - timedelta(seconds=1)).astimezone(tzinfo)
            assert earlier.utcoffset() < local.utcoffset()
            assert (local.hour, local.minute) > (hour, minute) or local.date() > earlier.date()
