"""`manireports identity import|apply|resolve|summary` as subprocesses (SQLite, MariaDB): one
JSON object with the contract's keys; exit 0, or 1 for invalid rows (nothing applied), a
missing mapping, or a batch that cannot be applied. An applied batch that maps parked people
publishes the classroom sync of their courses (a nats-server of the test's own), or says on
standard error that the next scheduled sync retries them when the bus cannot be reached."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from common.appdb import AppDB
from common.identity.parked import record_sync
from common.models.access import AuditLog
from common.models.identity import IdentityMapping
from tests.support import REPO, TEST_SECRET
from tests.web import bus_commands
from tests.web.bus_commands import published

nats_server = bus_commands.nats_server  # a server of each test's own

GOOD = "lms_source,lms_user_id,google_email,full_name\ncanvas,1,ada@school.example,Ada\n"


@pytest.fixture
def cli_env(tmp_path, app_db_url):
    return {
        "PATH": "/usr/bin:/bin",
        "MANIREPORTS_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": app_db_url,
        "SECRET_KEY": TEST_SECRET,
        "GOOGLE_WORKSPACE_DOMAINS": "school.example",
        "IDENTITY_SOURCES": "schoology",
    }


def identity(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "identity", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def count(url, model, *where):
    appdb = AppDB(url)
    try:
        with appdb.sessions() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where))
    finally:
        appdb.dispose()


def test_import_then_apply_then_resolve(cli_env, tmp_path, app_db_url):
    path = tmp_path / "map.csv"
    path.write_text(GOOD)
    done = identity(cli_env, "import", str(path))
    assert (done.returncode, done.stderr) == (0, "")
    staged = json.loads(done.stdout)
    assert list(staged) == ["batch_id", "rows", "valid", "errors"]
    assert (staged["rows"], staged["valid"], staged["errors"]) == (1, 1, [])
    assert count(app_db_url, IdentityMapping) == 0

    missing = identity(cli_env, "resolve", "canvas", "1")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "canvas user 1" in missing.stderr
    fallback = identity(cli_env, "resolve", "canvas", "1", "--email", "given@school.example")
    assert (fallback.returncode, fallback.stdout) == (0, "given@school.example\n")

    applied = identity(cli_env, "apply", staged["batch_id"])
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert list(result) == ["batch_id", "rows", "valid", "errors", "imported", "updated",
                            "unchanged", "parked_ready"]  # fmt: skip
    assert (result["imported"], result["updated"], result["unchanged"]) == (1, 0, 0)
    assert identity(cli_env, "resolve", "canvas", "1").stdout == "ada@school.example\n"
    again = identity(cli_env, "apply", staged["batch_id"])
    assert again.returncode == 1 and "applied already" in again.stderr
    assert identity(cli_env, "apply", "nope").returncode == 1

    summary = json.loads(identity(cli_env, "summary").stdout)
    [canvas] = summary["sources"]
    assert (canvas["source"], canvas["mappings"], canvas["unique_emails"]) == ("canvas", 1, 1)
    assert canvas["last_import"]


def test_import_with_apply_reports_the_counts(cli_env, tmp_path, app_db_url):
    path = tmp_path / "map.csv"
    path.write_text(GOOD + "schoology,9,bo@school.example,Bo\n")
    done = identity(cli_env, "import", str(path), "--apply")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert list(result) == ["batch_id", "rows", "valid", "errors", "imported", "updated",
                            "unchanged", "parked_ready"]  # fmt: skip
    assert (result["imported"], result["rows"], result["parked_ready"]) == (2, 2, 0)
    assert done.stderr == ""  # nobody parked: nothing to publish, nothing to say
    assert count(app_db_url, AuditLog, AuditLog.action == "identity_import_applied") == 1


def test_invalid_rows_exit_1_with_lines_and_apply_nothing(cli_env, tmp_path, app_db_url):
    path = tmp_path / "bad.csv"
    path.write_text(GOOD + "canvas,2,bob@elsewhere.example,Bob\nmars,3,c@school.example,\n")
    done = identity(cli_env, "import", str(path), "--apply")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert "imported" not in result
    assert [(e["line"], e["field"]) for e in result["errors"]] == [(3, "google_email"),
                                                                    (4, "lms_source")]  # fmt: skip
    assert count(app_db_url, IdentityMapping) == 0
    refused = identity(cli_env, "apply", result["batch_id"])
    assert refused.returncode == 1 and "rows in error" in refused.stderr
    assert json.loads(refused.stdout)["errors"] == result["errors"]
    assert count(app_db_url, IdentityMapping) == 0


def test_a_oneroster_file_needs_source_and_unreadable_files_exit_1(cli_env, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("sourcedId,role,username,givenName,familyName,email\n"
                    "s1,student,ana,Ana,Ng,ana@school.example\n")  # fmt: skip
    unnamed = identity(cli_env, "import", str(path))
    assert unnamed.returncode == 1 and "source" in unnamed.stderr
    named = identity(cli_env, "import", str(path), "--source", "schoology", "--apply")
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout)["imported"] == 1
    gone = identity(cli_env, "import", str(tmp_path / "absent.csv"))
    assert gone.returncode == 1 and "file" in gone.stderr


def test_unset_domains_warn_on_stderr(cli_env, tmp_path):
    path = tmp_path / "map.csv"
    path.write_text(GOOD)
    del cli_env["GOOGLE_WORKSPACE_DOMAINS"]
    done = identity(cli_env, "import", str(path))
    assert done.returncode == 0
    assert "GOOGLE_WORKSPACE_DOMAINS is unset" in done.stderr


def park(url: str, *people: tuple[str, str, int]) -> None:
    appdb = AppDB(url)
    try:
        with appdb.transaction() as session:
            record_sync(session, {c for _, _, c in people},
                        [{"source": s, "user_id": u, "course_id": c, "error": "no mapping"}
                         for s, u, c in people], datetime.now(UTC))  # fmt: skip
    finally:
        appdb.dispose()


PARKED_FILE = ("lms_source,lms_user_id,google_email\n"
               "moodle,7,seven@school.example\ncanvas,8,eight@school.example\n")  # fmt: skip


def test_applying_a_mapping_of_parked_people_publishes_the_sync_of_their_courses(
    cli_env, tmp_path, app_db_url, nats_server
):
    # Moodle user 7 waits in courses 30 and 31, moodle 8 in 32 (the file maps canvas 8).
    park(app_db_url, ("moodle", "7", 30), ("moodle", "7", 31), ("moodle", "8", 32))
    path = tmp_path / "map.csv"
    path.write_text(PARKED_FILE)
    cli_env["NATS_URL"] = nats_server.url
    done = identity(cli_env, "import", str(path), "--apply")
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert (result["imported"], result["parked_ready"]) == (2, 1)
    [(subject, msg_id, payload)] = published(nats_server.url)
    assert subject == "mr.cmd.sync.classroom"
    assert msg_id == f"identity:retry:{result['batch_id']}"
    assert payload == {"task": "classroom_sync", "trigger": "import", "courses": [30, 31]}


def test_apply_publishes_too_and_an_unreachable_bus_only_warns(cli_env, tmp_path, app_db_url,
                                                               nats_server):  # fmt: skip
    park(app_db_url, ("moodle", "7", 30))
    path = tmp_path / "map.csv"
    path.write_text(PARKED_FILE)
    staged = json.loads(identity(cli_env, "import", str(path)).stdout)
    # No NATS_URL and no embedded server: applied all the same, exit 0, told on stderr.
    done = identity(cli_env, "apply", staged["batch_id"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parked_ready"] == 1
    assert "1 parked people are mapped now" in done.stderr
    assert "the next scheduled classroom sync retries them" in done.stderr
    assert count(app_db_url, IdentityMapping) == 2
    # A second file while they still wait: published, with that batch's id.
    other = tmp_path / "other.csv"
    other.write_text("lms_source,lms_user_id,google_email\ncanvas,9,nine@school.example\n")
    cli_env["NATS_URL"] = nats_server.url
    staged = json.loads(identity(cli_env, "import", str(other)).stdout)
    again = identity(cli_env, "apply", staged["batch_id"])
    assert (again.returncode, again.stderr) == (0, "")
    assert [(m, p["courses"]) for _, m, p in published(nats_server.url)] == [
        (f"identity:retry:{staged['batch_id']}", [30])]  # fmt: skip
