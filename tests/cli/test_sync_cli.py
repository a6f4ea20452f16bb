"""`manireports sync bamboohr [--dry-run]` as a subprocess against the local BambooHR and Moodle
servers: one JSON object on standard output; exit 0 with no errors, 1 otherwise, 2 for a
configuration error named in one line (SQLite, MariaDB)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from common.appdb import AppDB
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig, HrSyncRun
from common.secrets import encrypt
from tests.support import REPO, TEST_SECRET

KEYS = ["created", "updated", "suspended", "unsuspended", "unchanged", "skipped", "errors",
        "cursor_before", "cursor_after", "dry_run", "duration_s"]  # fmt: skip


@pytest.fixture
def cli_env(tmp_path, app_db_url, bamboohr_server, moodle_ws_server):
    at = datetime.now(UTC) - timedelta(hours=1)
    bamboohr_server.add_employee("Ada", "Lovelace", "ada@acme.example", at=at)
    bamboohr_server.add_employee("Bob", "Builder", "bob@acme.example", at=at)
    return {
        "PATH": "/usr/bin:/bin",
        "MANIREPORTS_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": app_db_url,
        "SECRET_KEY": TEST_SECRET,
        **bamboohr_server.env,
        **moodle_ws_server.env,
    }


def sync_bamboohr(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", "bamboohr", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_run_prints_one_json_object_and_exits_0(cli_env, moodle_ws_server):
    done = sync_bamboohr(cli_env)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    [line] = done.stdout.splitlines()
    summary = json.loads(line)
    assert list(summary) == KEYS
    assert (summary["created"], summary["errors"], summary["dry_run"]) == (2, [], False)
    assert summary["cursor_after"]["offset"] == 0
    assert isinstance(summary["duration_s"], float)
    assert len(moodle_ws_server.users) == 2

    again = json.loads(sync_bamboohr(cli_env).stdout)
    assert (again["created"], again["unchanged"]) == (0, 2)
    assert again["cursor_before"] == summary["cursor_after"]


def test_dry_run_adds_the_diff_and_changes_nothing(cli_env, moodle_ws_server, app_db_url):
    done = sync_bamboohr(cli_env, "--dry-run")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert list(summary) == [*KEYS, "diff"]
    assert summary["dry_run"] is True and summary["created"] == 2
    assert [d["action"] for d in summary["diff"]] == ["create", "create"]
    assert moodle_ws_server.users == []
    appdb = AppDB(app_db_url)
    try:
        with appdb.transaction() as session:
            [run] = session.query(HrSyncRun).all()
            assert (run.trigger, run.dry_run, run.status) == ("cli", True, "ok")
    finally:
        appdb.dispose()


def test_errors_exit_1_with_the_summary(cli_env):
    done = sync_bamboohr({**cli_env, "MOODLE_WS_TOKEN": "f" * 32})
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert list(summary) == [*KEYS, "error"]
    assert "invalidtoken" in summary["error"]
    assert summary["errors"] == [{"employee_id": None, "error": summary["error"]}]
    assert done.stderr.startswith("manireports: sync bamboohr: error: Moodle refused")


def test_a_skipped_employee_is_said_on_standard_error(cli_env, moodle_ws_server):
    moodle_ws_server.add_user("ada", "ada@acme.example", "Ada", "Hand")
    done = sync_bamboohr(cli_env)
    assert done.returncode == 0
    assert json.loads(done.stdout)["skipped"] == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("manireports: skipped employee 1: email ada@acme.example belongs to")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"BAMBOOHR_API_KEY": ""}, "BAMBOOHR_API_KEY: not set"),
        ({"MOODLE_WS_URL": "", "MOODLE_WS_TOKEN": ""}, "MOODLE_WS_URL: not set"),
        ({"HR_SYNC_BATCH_SIZE": "many"}, "HR_SYNC_BATCH_SIZE: 'many' is not a whole number"),
        ({"HR_SYNC_MAX_SUSPEND_SHARE": "2"}, "HR_SYNC_MAX_SUSPEND_SHARE: 2 is outside 0..1"),
    ],
)
def test_a_configuration_error_exits_2_naming_it_in_one_line(cli_env, change, message):
    done = sync_bamboohr({**cli_env, **change})
    assert (done.returncode, done.stdout) == (2, "")
    [line] = done.stderr.splitlines()
    assert line.startswith(f"manireports: configuration error: {message}")


def test_environment_variables_win_over_the_stored_settings(cli_env, app_db_url):
    appdb = AppDB(app_db_url)
    try:
        with appdb.transaction() as session:
            secrets = {"bamboohr_api_key": "stale", "moodle_ws_token": "stale"}
            session.add(HrSyncConfig(
                id=SETTINGS_ROW, bamboohr_base_url="http://127.0.0.1:9/api",
                moodle_ws_url="http://127.0.0.1:9", batch_size=1,
                secrets=encrypt(json.dumps(secrets), TEST_SECRET),
            ))  # fmt: skip
    finally:
        appdb.dispose()
    done = sync_bamboohr(cli_env)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["created"] == 1  # the stored batch size, no variable overriding it
    assert summary["cursor_after"]["offset"] == 1
    done = sync_bamboohr({**cli_env, "HR_SYNC_BATCH_SIZE": "0"})
    assert json.loads(done.stdout)["created"] == 1
    assert json.loads(done.stdout)["cursor_after"]["offset"] == 0
    # Without the variables, the stored (unreachable) addresses are used: exit 1.
    stored_only = {k: v for k, v in cli_env.items()
                   if k not in ("BAMBOOHR_BASE_URL", "MOODLE_WS_URL")}  # fmt: skip
    assert sync_bamboohr(stored_only).returncode == 1
