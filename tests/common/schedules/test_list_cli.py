"""`manireports schedule list [--json]` as a subprocess on a migrated app DB: every schedule by
title with its frequency in words, its next run in UTC and whether it is active."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from common.appdb import AppDB
from common.migrate import upgrade
from common.models.schedules import ReportSchedule
from common.schedules import next_run, parse_recurrence
from tests.support import REPO, TEST_SECRET

AFTER = datetime(2027, 3, 26, 12, 0, tzinfo=UTC)


def schedule_list(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path), "DATABASE_URL": url,
           "SECRET_KEY": TEST_SECRET}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cli.main", "schedule", "list", *args],
                          env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def seed(url: str) -> None:
    upgrade(url)
    appdb = AppDB(url)
    london = parse_recurrence(frequency="weekly", at="09:00", weekdays="mon,wed",
                              tz="Europe/London")  # fmt: skip
    with appdb.transaction() as session:
        session.add_all([
            ReportSchedule(title="Weekly completions", report="course_completion",
                           frequency="weekly", at="09:00", weekdays="mon,wed", tz="Europe/London",
                           format="xlsx", active=True, createdby=2,
                           next_run_at=next_run(london, AFTER)),
            ReportSchedule(title="Another month", report="custom_7", frequency="monthly",
                           at="06:30", day="31", tz="UTC", format="pdf", active=False,
                           createdby=2, next_run_at=None),
        ])  # fmt: skip
    appdb.dispose()


def test_list_prints_every_schedule_in_words_and_as_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    seed(url)
    done = schedule_list(tmp_path, url)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    lines = [re.split(r"\s{2,}", line) for line in done.stdout.splitlines()]
    assert lines == [
        ["ID", "TITLE", "REPORT", "FREQUENCY", "NEXT RUN (UTC)", "ACTIVE"],
        ["2", "Another month", "custom_7",
         "Monthly on day 31 (the last day in shorter months) at 06:30 UTC", "-", "no"],
        # Monday 29 March 2027 is after the clocks go forward: 09:00 London is 08:00Z.
        ["1", "Weekly completions", "course_completion",
         "Weekly on Mon, Wed at 09:00 Europe/London", "2027-03-29T08:00:00Z", "yes"],
    ]  # fmt: skip
    as_json = schedule_list(tmp_path, url, "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == [
        {"id": 2, "title": "Another month", "report": "custom_7", "active": False,
         "frequency": "Monthly on day 31 (the last day in shorter months) at 06:30 UTC",
         "next_run": None},
        {"id": 1, "title": "Weekly completions", "report": "course_completion", "active": True,
         "frequency": "Weekly on Mon, Wed at 09:00 Europe/London",
         "next_run": "2027-03-29T08:00:00Z"},
    ]  # fmt: skip


def test_no_schedules_and_no_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    done = schedule_list(tmp_path, url)
    assert (done.returncode, done.stdout) == (0, "no schedules\n")
    assert schedule_list(tmp_path, url, "--json").stdout == "[]\n"
    missing = schedule_list(tmp_path, f"sqlite:///{tmp_path / 'absent' / 'app.db'}")
    assert missing.returncode == 2 and "DATABASE_URL" in missing.stderr
    assert missing.stderr.count("\n") == 1
