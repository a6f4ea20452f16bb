"""`manireports schedule run ID` as a subprocess on the two-company site: the run is rendered
and its email job queued here and now (no bus: the mailers' watcher dispatches it later), with
one JSON object on stdout; an unknown or odd id exits 2, a failing run 1 with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, update

from common.models.mail import CloudJob
from common.models.schedules import ReportSchedule
from common.schedules.store import ScheduleInput, save_schedule
from tests.common.schedules.conftest import author
from tests.support import REPO, TEST_SECRET


def schedule_run(tmp_path: Path, appdb, site, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path),
           "DATABASE_URL": appdb.url, "MOODLE_DATABASE_URL": site.url,
           "SECRET_KEY": TEST_SECRET}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cli.main", "schedule", "run", *args],
                          env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_run_queues_the_job_and_says_what_it_did(tmp_path, appdb, source, site):  # type: ignore[no-untyped-def]
    data = ScheduleInput(title="Now", report="course_progress", frequency="daily", at="09:00",
                         tz="UTC", format="csv", emails="boss@example.com",
                         users=[str(site.users["dept_a"])], active=False)  # fmt: skip
    row = save_schedule(appdb, source, data, author(appdb, source, site.users["mgr_a"]))
    done = schedule_run(tmp_path, appdb, site, str(row.id))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert {
        k: printed[k] for k in ("schedule", "recipients", "files", "left_out", "dispatched")
    } == {  # fmt: skip
        "schedule": row.id,
        "recipients": 2,
        "files": 2,
        "left_out": [],
        "dispatched": False,
    }
    with appdb.transaction() as session:
        job = session.get(CloudJob, printed["job"])
        assert job is not None and (job.type, job.status) == ("scheduled_report", "pending")

    # The report has gone: exit 1 with the reason, nothing queued.
    with appdb.transaction() as session:
        session.execute(update(ReportSchedule).values(report="custom_424242"))
    failed = schedule_run(tmp_path, appdb, site, str(row.id))
    assert failed.returncode == 1 and "no longer exists" in failed.stderr
    with appdb.transaction() as session:
        assert len(session.scalars(select(CloudJob.id)).all()) == 1


def test_unknown_and_odd_ids_exit_2(tmp_path, appdb, site):  # type: ignore[no-untyped-def]
    for raw, said in (("999", "no schedule 999"), ("1e3", "is not a schedule id"),
                      ("-1", "is not a schedule id")):  # fmt: skip
        done = schedule_run(tmp_path, appdb, site, raw)
        assert done.returncode == 2 and said in done.stderr, (raw, done.stderr)
        assert done.stdout == ""
