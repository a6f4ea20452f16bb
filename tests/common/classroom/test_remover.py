"""The Classroom Remover: what a live unenroll run removes with when UNENROLL_REMOVER is not set
and the Classroom is configured (or named by UNENROLL_REMOVER); a live run through it removes
exactly the candidates from the local Classroom API, and its configuration errors name the
variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.classroom.config import add_course, parse_course_map
from common.classroom.remover import ClassroomRemover, UnmappedCourse, from_env
from common.models.access import AuditLog
from common.settings import SettingsError
from common.unenroll.candidates import CourseRef
from common.unenroll.policy import Policy
from common.unenroll.run import LIVE_ACTION, NoRemover, configured_remover, run_policy
from tests.common.classroom.test_client import service_account_info
from tests.common.unenroll.lab import build_lab
from tests.factories.sites import NOW, Site
from tests.fakes.classroom_server import ClassroomServer
from tests.support import TEST_SECRET

LIVE = Policy(
    enabled=True,
    dry_run=False,
    grace_days=7,
    protected_domains=("staff.example",),
    protected_emails=("boss@school.example",),
    max_remove_share=0.2,
)
LAB_ROSTER = (
    "olga@school.example",
    "nina@school.example",
    "eddy@school.example",
    "rita@school.example",
    "stan@staff.example",
    "boss@school.example",
) + tuple(f"busy{n}@school.example" for n in range(4))


@pytest.fixture
def lab(site: Site, app_db_url: str):  # type: ignore[no-untyped-def]
    built = build_lab(site, app_db_url)
    yield built
    built.moodle.dispose()
    built.appdb.dispose()


def fake_env(server: ClassroomServer, course_map: str, db_url: str, tmp: Path) -> dict[str, str]:
    """The environment a process runs with: its app DB, the local Classroom API, extra pairs."""
    return {
        "MANIREPORTS_INSTANCE": str(tmp / "instance"),
        "DATABASE_URL": db_url,
        "SECRET_KEY": TEST_SECRET,
        "CLASSROOM_API_ENDPOINT": server.base_url,
        "CLASSROOM_COURSE_MAP": course_map,
        "GOOGLE_WORKSPACE_DOMAINS": "school.example,staff.example",
    }


def audited(lab, action: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    with lab.appdb.transaction() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        return [json.loads(r.details or "{}") | {"_outcome": r.outcome} for r in rows]


def test_a_live_run_removes_exactly_the_candidates_from_classroom(  # type: ignore[no-untyped-def]
    lab, classroom_server: ClassroomServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    classroom_server.add_course("gc-lab", students=LAB_ROSTER, teachers=("tom@school.example",))
    classroom_server.add_course("gc-other", students=("olga@school.example",))
    with lab.appdb.transaction() as s:  # the page's mapping; the environment adds 999
        add_course(s, lab.course, "gc-lab", moodle_course_name="Lab", actor_id=None, ip=None)
    env = fake_env(classroom_server, "999=gc-other", lab.appdb.url, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("UNENROLL_REMOVER", raising=False)
    remover = configured_remover()  # as `manireports unenroll run` loads it: no variable needed
    assert isinstance(remover, ClassroomRemover)
    assert remover.course_map == {lab.course: "gc-lab", 999: "gc-other"}
    monkeypatch.setenv("UNENROLL_REMOVER", "common.classroom.remover:from_env")
    remover = configured_remover()
    assert isinstance(remover, ClassroomRemover)

    summary = run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=LIVE)

    assert (summary.removed, summary.failed, summary.exit_code) == (2, 0, 0)
    assert classroom_server.students("gc-lab") == set(LAB_ROSTER) - {
        "olga@school.example",
        "nina@school.example",
    }
    assert classroom_server.teachers("gc-lab") == {"tom@school.example"}
    assert classroom_server.students("gc-other") == {"olga@school.example"}
    deletes = sorted(r.path for r in classroom_server.api_requests() if r.method == "DELETE")
    assert deletes == [
        "/v1/courses/gc-lab/students/nina@school.example",
        "/v1/courses/gc-lab/students/olga@school.example",
    ]
    logged = audited(lab, LIVE_ACTION)
    assert sorted(e["email"] for e in logged) == ["nina@school.example", "olga@school.example"]
    assert all(e["_outcome"] == "success" for e in logged)


def test_quota_errors_during_a_run_are_retried(  # type: ignore[no-untyped-def]
    lab, classroom_server: ClassroomServer, tmp_path: Path
) -> None:
    classroom_server.add_course("gc-lab", students=LAB_ROSTER)
    remover = from_env(fake_env(classroom_server, f"{lab.course}=gc-lab", lab.appdb.url, tmp_path))
    slept: list[float] = []
    remover.client._sleep = slept.append
    classroom_server.throttle(2)
    summary = run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=LIVE)
    assert (summary.removed, summary.failed) == (2, 0)
    assert slept == [1.0, 2.0]
    assert "olga@school.example" not in classroom_server.students("gc-lab")


def test_an_unmapped_course_is_a_failed_removal_and_nobody_is_removed(  # type: ignore[no-untyped-def]
    lab, classroom_server: ClassroomServer, tmp_path: Path
) -> None:
    classroom_server.add_course("gc-lab", students=LAB_ROSTER)
    remover = from_env(fake_env(classroom_server, "999=gc-lab", lab.appdb.url, tmp_path))
    summary = run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=LIVE)
    assert (summary.removed, summary.failed, summary.exit_code) == (0, 2, 1)
    assert all("UnmappedCourse" in e["error"] for e in summary.errors)
    assert classroom_server.students("gc-lab") == set(LAB_ROSTER)
    assert classroom_server.api_requests() == []
    assert [e["_outcome"] for e in audited(lab, LIVE_ACTION)] == ["failed", "failed"]


def test_someone_already_gone_counts_as_removed(
    classroom_server: ClassroomServer, appdb: AppDB, tmp_path: Path
) -> None:
    classroom_server.add_course("gc1")
    remover = from_env(fake_env(classroom_server, "12=gc1", appdb.url, tmp_path))
    course = CourseRef(course_id=12, fullname="Maths", shortname="M1")
    remover.remove(course, "left@school.example")  # 404: no error
    assert [r.status for r in classroom_server.api_requests()] == [404]
    with pytest.raises(UnmappedCourse, match="Moodle course 13"):
        remover.remove(CourseRef(course_id=13, fullname="Art", shortname="A1"), "x@school.example")


def test_course_map_parsing() -> None:
    assert parse_course_map(" 12=abc123, 13 = def456 ,") == {12: "abc123", 13: "def456"}
    assert parse_course_map("") == {}
    for bad in ("12", "x=abc", "12=", "12=a,12=b", "12=a b"):
        with pytest.raises(SettingsError, match="CLASSROOM_COURSE_MAP"):
            parse_course_map(bad)


def test_nothing_configured_is_no_remover_and_errors_name_the_variable(
    tmp_path: Path, appdb: AppDB
) -> None:
    base = {"MANIREPORTS_INSTANCE": str(tmp_path / "i"), "DATABASE_URL": appdb.url,
            "SECRET_KEY": TEST_SECRET}  # fmt: skip
    assert configured_remover(base) is None  # a live run then stops with NoRemover
    with pytest.raises(NoRemover, match="the Classroom is not configured"):
        from_env(base)
    key = tmp_path / "key.json"
    key.write_text(json.dumps(service_account_info()))
    env = {**base, "CLASSROOM_COURSE_MAP": "12=abc", "CLASSROOM_SERVICE_ACCOUNT_FILE": str(key)}
    with pytest.raises(SettingsError, match="CLASSROOM_ADMIN_EMAIL"):
        from_env(env)
    (tmp_path / "bad.json").write_text('{"type": "authorized_user"}')
    with pytest.raises(SettingsError, match="not a service account key"):
        from_env(
            {
                **env,
                "CLASSROOM_ADMIN_EMAIL": "admin@school.example",
                "CLASSROOM_SERVICE_ACCOUNT_FILE": str(tmp_path / "bad.json"),
            }
        )
    remover = from_env({**env, "CLASSROOM_ADMIN_EMAIL": "admin@school.example"})
    assert remover.course_map == {12: "abc"}
    assert remover.client._service._http.credentials._subject == "admin@school.example"
