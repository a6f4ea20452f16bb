"""`manireports privacy export|delete`: the zip, the confirmation, bad arguments, the audit."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.migrate import upgrade
from common.models.access import AuditLog
from common.models.analytics import UsertimeSession
from common.privacy import DELETE_ACTION, EXPORT_ACTION
from tests.support import REPO, TEST_SECRET

WHEN = datetime(2026, 3, 4, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    appdb = AppDB(url)
    with appdb.transaction() as s:
        for user in (7, 8):
            s.add(UsertimeSession(userid=user, courseid=3, sessionstart=WHEN, lastbeat=WHEN))
    appdb.dispose()
    return url


def run_cli(tmp_path: Path, url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path),
           "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cli.main", "privacy", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          input=stdin)  # fmt: skip


def sessions_of(url: str) -> list[int]:
    appdb = AppDB(url)
    try:
        with appdb.transaction() as s:
            return sorted(s.scalars(select(UsertimeSession.userid)))
    finally:
        appdb.dispose()


def audited(url: str) -> list[tuple[str, str | None, str | None]]:
    appdb = AppDB(url)
    try:
        with appdb.transaction() as s:
            rows = s.execute(select(AuditLog.action, AuditLog.object_id, AuditLog.details))
            return [(r.action, r.object_id, r.details) for r in rows]
    finally:
        appdb.dispose()


def test_export_writes_a_zip_of_the_users_rows(tmp_path: Path, database: str) -> None:
    target = tmp_path / "user7.zip"
    result = run_cli(tmp_path, database, "export", "7", "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert "1 rows" in result.stdout and str(target) in result.stdout
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as archive:
        sessions = json.loads(archive.read("manireports_usertime_sessions.json"))
        manifest = json.loads(archive.read("manifest.json"))
    assert [row["userid"] for row in sessions] == [7]
    assert manifest["user_id"] == 7
    ((action, object_id, details),) = audited(database)
    assert (action, object_id) == (EXPORT_ACTION, "7") and '"via": "cli"' in (details or "")


def test_delete_asks_and_does_nothing_unless_confirmed(tmp_path: Path, database: str) -> None:
    refused = run_cli(tmp_path, database, "delete", "7", stdin="yes\n")
    assert refused.returncode == 1 and "nothing deleted" in refused.stderr
    assert run_cli(tmp_path, database, "delete", "7").returncode == 1  # no answer at all
    assert sessions_of(database) == [7, 8]
    confirmed = run_cli(tmp_path, database, "delete", "7", stdin="7\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "deleted     manireports_usertime_sessions: 1" in confirmed.stdout
    assert sessions_of(database) == [8]
    assert run_cli(tmp_path, database, "delete", "8", "--yes").returncode == 0
    assert sessions_of(database) == []
    assert [a[:2] for a in audited(database)] == [(DELETE_ACTION, "7"), (DELETE_ACTION, "8")]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("export", "abc", "--output", "x.zip"), "USERID"),
        (("export", "0", "--output", "x.zip"), "USERID"),
        (("delete", "-3", "--yes"), "USERID"),
        (("export", "7", "--output", "x.txt"), "--output"),
        (("export", "7", "--output", "/no/such/folder/x.zip"), "--output"),
        (("export", "7"), "--output"),
    ],
)
def test_bad_arguments_exit_2_naming_them(
    tmp_path: Path, database: str, args: tuple[str, ...], named: str
) -> None:
    result = run_cli(tmp_path, database, *args)
    assert result.returncode == 2 and named in result.stderr, result.stderr
    assert sessions_of(database) == [7, 8] and audited(database) == []


def test_a_missing_database_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    result = run_cli(tmp_path, url, "delete", "7", "--yes")
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr
