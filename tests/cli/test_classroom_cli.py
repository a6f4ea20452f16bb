"""`manireports classroom sync` and `manireports classroom courses` as subprocesses against the
local Classroom API: one JSON summary, exit 0 done or skipped, 1 a failed call or an unmapped
--course, 2 a configuration error (one line); the mapping listed with course names and where
each pair comes from (SQLite, MariaDB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.classroom.config import add_course
from common.models.access import AuditLog
from common.models.identity import IdentityMapping
from tests.factories.sites import DAY, NOW, Site
from tests.fakes.classroom_server import ClassroomServer
from tests.support import REPO, TEST_SECRET

SUMMARY_KEYS = {"courses", "added", "invited", "removed", "unchanged", "parked", "errors",
                "removals_held", "status", "skipped"}  # fmt: skip


@pytest.fixture
def world(site: Site, app_db_url: str):  # type: ignore[no-untyped-def]
    m = site.moodle
    course = m.course(fullname="CLI Roster", shortname="CLI-R")
    other = m.course(fullname="Unmapped Course")
    people = {}
    for key, role in (("amy", "student"), ("tom", "editingteacher"), ("kim", "student")):
        people[key] = m.user(username=f"cli_{key}", email=f"{key}@moodle.example")
        m.enrol(people[key], course, role=role, timestart=NOW - 5 * DAY)
    appdb = AppDB(app_db_url)
    with appdb.transaction() as s:
        for key in ("amy", "tom"):  # kim has no mapping: parked
            s.add(IdentityMapping(source="moodle", lms_user_id=str(people[key]),
                                  google_email=f"{key}@school.example"))  # fmt: skip
    yield course, other, people, appdb
    appdb.dispose()


@pytest.fixture
def cli_env(tmp_path: Path, site: Site, app_db_url: str, classroom_server: ClassroomServer):  # type: ignore[no-untyped-def]
    return {
        "PATH": "/usr/bin:/bin",
        "MANIREPORTS_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": app_db_url,
        "MOODLE_DATABASE_URL": site.url,
        "SECRET_KEY": TEST_SECRET,
        "PYTHONPATH": str(REPO),
        "CLASSROOM_API_ENDPOINT": classroom_server.base_url,
        "GOOGLE_WORKSPACE_DOMAINS": "school.example",
    }


def classroom(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "classroom", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip


def map_course(appdb: AppDB, moodle_id: int, classroom_id: str) -> None:
    with appdb.transaction() as s:
        add_course(s, moodle_id, classroom_id, moodle_course_name="x", actor_id=None, ip=None)


def test_sync_prints_one_summary_and_syncs_the_roster(world, cli_env, classroom_server) -> None:  # type: ignore[no-untyped-def]
    course, _other, people, appdb = world
    classroom_server.add_course("gc-cli")
    map_course(appdb, course, "gc-cli")
    done = classroom(cli_env, "sync")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) == SUMMARY_KEYS
    assert (summary["status"], summary["courses"], summary["added"]) == ("ok", 1, 2)
    assert [(p["user_id"], p["course_id"]) for p in summary["parked"]] == [(people["kim"], course)]
    assert summary["removals_held"] == [course]
    assert classroom_server.students("gc-cli") == {"amy@school.example"}
    assert classroom_server.teachers("gc-cli") == {"tom@school.example"}
    with appdb.transaction() as s:
        [event] = s.scalars(select(AuditLog).where(AuditLog.action == "classroom_sync")).all()
        assert json.loads(event.details or "{}")["trigger"] == "cli"


def test_nothing_configured_or_mapped_exits_0_skipped(world, cli_env) -> None:  # type: ignore[no-untyped-def]
    course, _other, _people, appdb = world
    done = classroom(cli_env, "sync")  # an endpoint, but no course mapped
    assert done.returncode == 0
    assert json.loads(done.stdout)["status"] == "skipped"
    assert "skipped: no Moodle course is mapped" in done.stderr
    map_course(appdb, course, "gc-cli")
    unset = {k: v for k, v in cli_env.items() if k != "CLASSROOM_API_ENDPOINT"}
    done = classroom(unset, "sync")
    assert done.returncode == 0 and "not configured" in json.loads(done.stdout)["skipped"]


def test_failed_calls_and_unmapped_courses_exit_1(world, cli_env, classroom_server) -> None:  # type: ignore[no-untyped-def]
    course, other, _people, appdb = world
    map_course(appdb, course, "gc-missing")  # not on the Classroom side: 404 on listing
    done = classroom(cli_env, "sync")
    assert done.returncode == 1
    [error] = json.loads(done.stdout)["errors"]
    assert error["classroom_id"] == "gc-missing" and "404" in error["error"]
    assert "gc-missing" in done.stderr
    classroom_server.add_course("gc-missing")
    done = classroom(cli_env, "sync", "--course", str(other), "--course", str(course))
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["errors"] == [{"course_id": other, "error": "not mapped to a Classroom course"}]
    assert summary["courses"] == 1 and classroom_server.students("gc-missing") == {
        "amy@school.example"
    }


def test_a_configuration_error_exits_2_in_one_line(world, cli_env) -> None:  # type: ignore[no-untyped-def]
    done = classroom({**cli_env, "CLASSROOM_COURSE_MAP": "twelve=abc"}, "sync")
    assert done.returncode == 2 and done.stdout == ""
    assert "CLASSROOM_COURSE_MAP" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_courses_lists_the_mapping_with_names(world, cli_env) -> None:  # type: ignore[no-untyped-def]
    course, _other, _people, appdb = world
    done = classroom(cli_env, "courses")
    assert (done.returncode, done.stdout) == (
        0,
        "No Moodle course is mapped to a Classroom course.\n",
    )
    map_course(appdb, course, "gc-cli")
    env = {**cli_env, "CLASSROOM_COURSE_MAP": "999999=gc-env"}
    done = classroom(env, "courses", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"moodle_course_id": course, "course": "CLI Roster", "shortname": "CLI-R",
         "classroom_course_id": "gc-cli", "from": "page"},
        {"moodle_course_id": 999999, "course": None, "shortname": None,
         "classroom_course_id": "gc-env", "from": "CLASSROOM_COURSE_MAP"},
    ]  # fmt: skip
    lines = classroom(env, "courses").stdout.splitlines()
    assert lines == [f"{course}\tCLI Roster\tgc-cli\tpage",
                     "999999\t(no such Moodle course)\tgc-env\tCLASSROOM_COURSE_MAP"]  # fmt: skip
