"""`manireports unenroll preview [--json]` and `manireports unenroll run` as subprocesses on the
two-company site with the lab course (people last seen relative to the real clock): preview
lists candidates and protected people, run prints one JSON summary; exit 0 done, 1 stopped,
2 a configuration error — a live run without a remover removes no one (SQLite, MariaDB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from common.models.access import AuditLog
from common.unenroll.candidates import CourseRef
from common.unenroll.policy import save_policy
from tests.common.unenroll.lab import build_lab
from tests.support import REPO, TEST_SECRET

POLICY = {
    "enabled": "1",
    "dry_run": "1",
    "grace_days": "7",
    "max_remove_share": "20%",
    "sources": "",
    "protected_domains": "staff.example",
    "protected_emails": "boss@school.example",
}
SUMMARY_KEYS = [
    "enabled",
    "dry_run",
    "candidates",
    "removed",
    "protected",
    "failed",
    "stopped",
    "errors",
]


# The Remover the live runs load (UNENROLL_REMOVER=tests.cli.test_unenroll_cli:make_remover):
# each removal is one JSON line in the file named by RECORDING_REMOVER_FILE.
class FileRecordingRemover:
    def __init__(self, path: Path) -> None:
        self.path = path

    def remove(self, course_mapping: CourseRef, email: str) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"course_id": course_mapping.course_id, "email": email}) + "\n")


def make_remover() -> FileRecordingRemover:
    return FileRecordingRemover(Path(os.environ["RECORDING_REMOVER_FILE"]))


@pytest.fixture
def lab(site, app_db_url):  # type: ignore[no-untyped-def]
    now = int(time.time())
    built = build_lab(site, app_db_url, now=now)
    # The real clock moves on while the test runs: the boundary case is the core tests' job.
    la = built.moodle.tables["user_lastaccess"]
    with site.moodle.engine.begin() as connection:
        connection.execute(
            la.update().where(la.c.userid == built.users["edge"]).values(timeaccess=now - 86_400)
        )
    yield built
    built.moodle.dispose()
    built.appdb.dispose()


@pytest.fixture
def cli_env(tmp_path, lab, app_db_url):  # type: ignore[no-untyped-def]
    return {
        "PATH": "/usr/bin:/bin",
        "MANIREPORTS_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": app_db_url,
        "MOODLE_DATABASE_URL": lab.site.url,
        "SECRET_KEY": TEST_SECRET,
        "PYTHONPATH": str(REPO),
    }


def policy(lab, **changes: str) -> None:  # type: ignore[no-untyped-def]
    with lab.appdb.transaction() as s:
        save_policy(s, {**POLICY, **changes}, actor_id=None, via="test")


def unenroll(env, *args):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "unenroll", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def actions(lab, action: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    with lab.appdb.transaction() as s:
        rows = s.scalars(select(AuditLog.details).where(AuditLog.action == action))
        return [json.loads(r or "{}") for r in rows]


def test_preview_lists_candidates_and_protected_people(cli_env, lab):  # type: ignore[no-untyped-def]
    policy(lab)
    done = unenroll(cli_env, "preview", "--json")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    found = json.loads(done.stdout)
    assert sorted((c["email"], c["days_inactive"]) for c in found["candidates"]) == [
        ("nina@school.example", 15),
        ("olga@school.example", 12),
    ]
    assert {c["why"].split(";")[0].split(" (")[0] for c in found["candidates"]} == {
        "never accessed",
        "no access for 12 days",
    }
    assert sorted((p["email"], p["protected"]) for p in found["protected"]) == [
        ("Boss@School.Example", "protected email boss@school.example"),
        ("stan@Staff.Example", "protected domain staff.example"),
    ]
    text = unenroll(cli_env, "preview")
    assert text.returncode == 0 and "2 candidates, 2 protected" in text.stdout
    assert "never accessed; enrolled 15 days ago" in text.stdout
    assert actions(lab, "dry_unenroll") == []  # a preview changes nothing


def test_a_dry_run_logs_each_candidate(cli_env, lab):  # type: ignore[no-untyped-def]
    policy(lab)
    done = unenroll(cli_env, "run")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    summary = json.loads(done.stdout)
    assert list(summary) == SUMMARY_KEYS
    assert (
        summary["dry_run"],
        summary["candidates"],
        summary["removed"],
        summary["protected"],
        summary["stopped"],
    ) == (True, 2, 0, 2, None)
    assert sorted(e["email"] for e in actions(lab, "dry_unenroll")) == [
        "nina@school.example",
        "olga@school.example",
    ]
    assert all(e["via"] == "cli" for e in actions(lab, "dry_unenroll"))


def test_off_does_nothing(cli_env, lab):  # type: ignore[no-untyped-def]
    done = unenroll(cli_env, "run")  # no policy saved: off
    assert done.returncode == 0
    assert json.loads(done.stdout)["enabled"] is False
    assert actions(lab, "dry_unenroll") == []


def test_a_live_run_without_a_remover_is_a_configuration_error(cli_env, lab):  # type: ignore[no-untyped-def]
    policy(lab, dry_run="")
    done = unenroll(cli_env, "run")
    assert done.returncode == 2 and done.stdout == ""
    assert "no Classroom remover is configured" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert actions(lab, "auto_unenroll") == []
    bad = unenroll({**cli_env, "UNENROLL_REMOVER": "no.such.module:make"}, "run")
    assert bad.returncode == 2 and "UNENROLL_REMOVER" in bad.stderr


def test_a_live_run_removes_through_the_configured_remover(cli_env, lab, tmp_path):  # type: ignore[no-untyped-def]
    policy(lab, dry_run="")
    record = tmp_path / "removed.jsonl"
    env = {
        **cli_env,
        "UNENROLL_REMOVER": "tests.cli.test_unenroll_cli:make_remover",
        "RECORDING_REMOVER_FILE": str(record),
    }
    done = unenroll(env, "run")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert json.loads(done.stdout)["removed"] == 2
    removed = sorted(json.loads(line)["email"] for line in record.read_text().splitlines())
    assert removed == ["nina@school.example", "olga@school.example"]
    assert len(actions(lab, "auto_unenroll")) == 2


def test_over_the_share_the_run_stops_and_exits_1(cli_env, lab, tmp_path):  # type: ignore[no-untyped-def]
    policy(lab, dry_run="", max_remove_share="10%")
    record = tmp_path / "removed.jsonl"
    env = {
        **cli_env,
        "UNENROLL_REMOVER": "tests.cli.test_unenroll_cli:make_remover",
        "RECORDING_REMOVER_FILE": str(record),
    }
    done = unenroll(env, "run")
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["removed"] == 0 and "Unenroll Lab" in summary["stopped"]
    assert "stopped" in done.stderr
    assert not record.exists() and actions(lab, "auto_unenroll") == []
