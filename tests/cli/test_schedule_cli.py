"""`manireports schedule next` as a subprocess: the next runs in UTC ISO 8601, one per line,
worked out in the schedule's zone; a bad option exits 2 with one line naming it."""

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.support import REPO


def schedule_next(tmp_path, *args):
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "schedule", "next", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(tmp_path, *args):
    done = schedule_next(tmp_path, *args)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout


def test_nine_in_london_printed_as_utc_instants(tmp_path):
    # 27 Mar 2027 GMT: 09:00Z; BST from 28 Mar 01:00Z: 09:00 BST = 08:00Z.
    out = ok(tmp_path, "--frequency", "daily", "--at", "09:00", "--tz", "Europe/London",
             "--after", "2027-03-26T12:00:00Z", "--count", "3")  # fmt: skip
    assert out == "2027-03-27T09:00:00Z\n2027-03-28T08:00:00Z\n2027-03-29T08:00:00Z\n"


def test_a_skipped_time_and_a_repeated_time(tmp_path):
    # 01:30 London on 28 Mar 2027 is in the gap (01:00 GMT -> 02:00 BST): 02:00 BST = 01:00Z.
    out = ok(tmp_path, "--frequency", "daily", "--at", "01:30", "--tz", "Europe/London",
             "--after", "2027-03-27T12:00:00Z", "--count", "2")  # fmt: skip
    assert out == "2027-03-28T01:00:00Z\n2027-03-29T00:30:00Z\n"
    # 01:30 New York on 7 Nov 2027 happens as EDT (05:30Z) then EST (06:30Z): once, 05:30Z.
    out = ok(tmp_path, "--frequency", "cron", "--cron", "30 1 * * *", "--tz", "America/New_York",
             "--after", "2027-11-06T12:00:00Z", "--count", "2")  # fmt: skip
    assert out == "2027-11-07T05:30:00Z\n2027-11-08T06:30:00Z\n"


def test_weekdays_comma_separated_or_repeated(tmp_path):
    # Mon 1 Mar 2027, Wed 3 Mar, Mon 8 Mar at 09:00 UTC.
    expected = "2027-03-01T09:00:00Z\n2027-03-03T09:00:00Z\n2027-03-08T09:00:00Z\n"
    common = ("--frequency", "weekly", "--at", "09:00", "--tz", "UTC",
              "--after", "2027-02-28T12:00:00Z", "--count", "3")  # fmt: skip
    assert ok(tmp_path, *common, "--weekday", "mon,wed") == expected
    assert ok(tmp_path, *common, "--weekday", "wed", "--weekday", "mon") == expected


def test_monthly_day_31_and_strictly_after(tmp_path):
    # After exactly 31 Jan 2028 09:00Z (a run): 29 Feb (leap year), 31 Mar, 30 Apr.
    out = ok(tmp_path, "--frequency", "monthly", "--day", "31", "--at", "09:00", "--tz", "UTC",
             "--after", "2028-01-31T09:00:00Z", "--count", "3")  # fmt: skip
    assert out == "2028-02-29T09:00:00Z\n2028-03-31T09:00:00Z\n2028-04-30T09:00:00Z\n"


def test_defaults_are_five_runs_after_now(tmp_path):
    before = datetime.now(UTC)
    out = ok(tmp_path, "--frequency", "cron", "--cron", "*/5 * * * *", "--tz", "Asia/Kolkata")
    lines = out.splitlines()
    instants = [datetime.strptime(line, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for line in lines]
    assert len(instants) == 5 and instants == sorted(set(instants))
    # Every 5 minutes of Kolkata's wall clock (+05:30) is every 5 minutes of UTC too.
    assert instants[0] > before and all(i.minute % 5 == 0 for i in instants)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--frequency", "hourly", "--at", "09:00", "--tz", "UTC"), "--frequency"),
        (("--at", "09:00", "--tz", "UTC"), "--frequency"),
        (("--frequency", "daily", "--at", "25:00", "--tz", "UTC"), "--at"),
        (("--frequency", "daily", "--tz", "UTC"), "--at"),
        (("--frequency", "daily", "--tz", "UTC", "--at"), "--at"),
        (("--frequency", "weekly", "--at", "09:00", "--tz", "UTC", "--weekday", "mon,funday"),
         "--weekday"),
        (("--frequency", "weekly", "--at", "09:00", "--tz", "UTC"), "--weekday"),
        (("--frequency", "monthly", "--at", "09:00", "--tz", "UTC", "--day", "32"), "--day"),
        (("--frequency", "cron", "--cron", "0 9 * * * 0", "--tz", "UTC"), "--cron"),
        (("--frequency", "cron", "--cron", "0 25 * * *", "--tz", "UTC"), "--cron"),
        (("--frequency", "cron", "--cron", "0 9 * * *", "--at", "09:00", "--tz", "UTC"), "--at"),
        (("--frequency", "daily", "--at", "09:00", "--tz", "Mars/Olympus"), "--tz"),
        (("--frequency", "daily", "--at", "09:00"), "--tz"),
        (("--frequency", "daily", "--at", "09:00", "--tz", "UTC", "--after", "2027-03-29"),
         "--after"),
        (("--frequency", "daily", "--at", "09:00", "--tz", "UTC", "--after", "9500-01-01T00:00Z"),
         "--after"),
        (("--frequency", "daily", "--at", "09:00", "--tz", "UTC", "--count", "0"), "--count"),
        (("--frequency", "daily", "--at", "09:00", "--tz", "UTC", "--count", "1001"), "--count"),
        (("--frequency", "daily", "--at", "09:00", "--tz", "UTC", "--count", "five"), "--count"),
    ],
)  # fmt: skip
def test_a_bad_option_exits_2_naming_it_in_one_line(tmp_path, args, named):
    done = schedule_next(tmp_path, *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("manireports: ") and done.stderr.count("\n") == 1
    assert named in done.stderr


def test_every_bad_option_is_named_in_the_same_line(tmp_path):
    done = schedule_next(tmp_path, "--frequency", "weekly", "--at", "9am", "--weekday", "someday",
                         "--tz", "Nowhere", "--after", "soon", "--count", "0")  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr.count("\n")) == (2, "", 1)
    for flag in ("--at:", "--weekday:", "--tz:", "--after:", "--count:"):
        assert flag in done.stderr
