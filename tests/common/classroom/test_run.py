"""One roster sync run over the stored course mapping against the local Classroom API: the
roster follows Moodle, unmapped people are parked (pending, then resolved once mapped), one
`classroom_sync` audit event per run, and a Classroom nobody configured is skipped, quietly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from common.appdb import AppDB
from common.classroom.config import add_course
from common.classroom.run import run_classroom_sync
from common.models.access import AuditLog
from common.models.classroom import ClassroomCourse
from common.models.identity import IdentityMapping, ParkedIdentity
from common.moodle import MoodleSource
from common.settings import Settings, SettingsError
from tests.factories.sites import DAY, NOW, Site
from tests.fakes.classroom_server import ClassroomServer
from tests.support import make_settings


class World:
    def __init__(self, site: Site, app_db_url: str, tmp_path: Path) -> None:
        m = site.moodle
        self.course = m.course(fullname="Run Course")
        self.other = m.course(fullname="Other Course")
        self.users: dict[str, int] = {}
        for key, role in (("ann", "student"), ("ben", "student"), ("tia", "editingteacher")):
            self.users[key] = m.user(username=f"run_{key}", email=f"moodle-{key}@school.example")
            m.enrol(self.users[key], self.course, role=role, timestart=NOW - 10 * DAY)
        self.users["zoe"] = m.user(username="run_zoe", email="zoe@school.example")
        m.enrol(self.users["zoe"], self.other, timestart=NOW - DAY)
        self.appdb, self.moodle = AppDB(app_db_url), MoodleSource(site.url)
        self.settings: Settings = make_settings(tmp_path, DATABASE_URL=app_db_url)
        for key in ("ann", "ben", "tia"):
            self.map(key)

    def map(self, key: str) -> None:
        with self.appdb.transaction() as s:
            s.add(IdentityMapping(source="moodle", lms_user_id=str(self.users[key]),
                                  google_email=f"{key}@school.example"))  # fmt: skip

    def add_course(self, moodle_id: int, classroom_id: str) -> None:
        with self.appdb.transaction() as s:
            add_course(s, moodle_id, classroom_id, moodle_course_name="x", actor_id=None, ip=None)

    def run(self, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("trigger", "schedule")
        return run_classroom_sync(self.appdb, self.moodle, self.settings, now=NOW, **kwargs)

    def audits(self) -> list[dict]:  # type: ignore[type-arg]
        with self.appdb.transaction() as s:
            rows = s.scalars(select(AuditLog).where(AuditLog.action == "classroom_sync")
                             .order_by(AuditLog.id))  # fmt: skip
            return [json.loads(r.details or "{}") | {"_outcome": r.outcome} for r in rows]

    def parked(self) -> list[tuple[str, int, bool]]:
        with self.appdb.transaction() as s:
            rows = s.scalars(select(ParkedIdentity).order_by(ParkedIdentity.id))
            return [(r.lms_user_id, r.course_id, r.resolved_at is None) for r in rows]


@pytest.fixture
def world(site: Site, app_db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    built = World(site, app_db_url, tmp_path)
    yield built
    built.moodle.dispose()
    built.appdb.dispose()


@pytest.fixture
def endpoint(classroom_server: ClassroomServer, monkeypatch: pytest.MonkeyPatch) -> ClassroomServer:
    monkeypatch.setenv("CLASSROOM_API_ENDPOINT", classroom_server.base_url)
    monkeypatch.setenv("GOOGLE_WORKSPACE_DOMAINS", "school.example")
    classroom_server.add_course("gc-run", students=("left@school.example",))
    classroom_server.add_course("gc-other")
    return classroom_server


def test_not_configured_or_nothing_mapped_is_skipped_not_an_error(
    world, classroom_server, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    for name in (
        "CLASSROOM_API_ENDPOINT",
        "CLASSROOM_SERVICE_ACCOUNT_FILE",
        "CLASSROOM_COURSE_MAP",
    ):
        monkeypatch.delenv(name, raising=False)
    world.add_course(world.course, "gc-run")
    summary = world.run()
    assert (summary.status, summary.exit_code) == ("skipped", 0)
    assert "not configured" in summary.skipped
    monkeypatch.setenv("CLASSROOM_API_ENDPOINT", classroom_server.base_url)  # configured now
    with world.appdb.transaction() as s:
        s.execute(delete(ClassroomCourse))
    summary = world.run()
    assert (summary.status, summary.skipped) == ("skipped", "no Moodle course is mapped to a "
                                                 "Classroom course")  # fmt: skip
    assert world.audits() == [] and classroom_server.api_requests() == []


def test_a_run_syncs_the_mapped_courses_and_is_audited(world, endpoint) -> None:  # type: ignore[no-untyped-def]
    world.add_course(world.course, "gc-run")
    summary = world.run(trigger="manual")
    assert (summary.status, summary.errors, summary.parked) == ("ok", [], [])
    assert endpoint.students("gc-run") == {"ann@school.example", "ben@school.example"}
    assert endpoint.teachers("gc-run") == {"tia@school.example"}
    assert (summary.courses, summary.added, summary.removed) == (1, 3, 1)
    [event] = world.audits()
    assert event["trigger"] == "manual" and event["_outcome"] == "success"
    assert (event["courses"], event["added"], event["removed"], event["parked"]) == (
        [world.course], 3, 1, 0)  # fmt: skip


def test_an_unmapped_person_is_parked_then_placed_and_resolved(world, endpoint) -> None:  # type: ignore[no-untyped-def]
    world.add_course(world.course, "gc-run")
    world.add_course(world.other, "gc-other")
    first = world.run()
    zoe = str(world.users["zoe"])
    assert [(p["user_id"], p["course_id"]) for p in first.parked] == [(world.users["zoe"],
                                                                      world.other)]  # fmt: skip
    assert world.parked() == [(zoe, world.other, True)]
    assert endpoint.students("gc-other") == set()
    assert world.audits()[0]["parked"] == 1

    world.map("zoe")
    second = world.run(trigger="import", courses=[world.other])
    assert (second.parked, second.errors, second.courses) == ([], [], 1)
    assert endpoint.students("gc-other") == {"zoe@school.example"}
    assert world.parked() == [(zoe, world.other, False)]
    assert world.audits()[1]["courses"] == [world.other]


def test_a_requested_course_that_is_not_mapped_is_an_error(world, endpoint) -> None:  # type: ignore[no-untyped-def]
    world.add_course(world.course, "gc-run")
    summary = world.run(courses=[world.other, world.course])
    assert summary.status == "errors" and summary.exit_code == 1
    assert summary.errors == [
        {"course_id": world.other, "error": "not mapped to a Classroom course"}
    ]
    assert endpoint.students("gc-run") == {"ann@school.example", "ben@school.example"}
    assert world.audits()[0]["_outcome"] == "failed"


def test_a_failed_call_is_in_the_summary_and_the_audit(world, endpoint) -> None:  # type: ignore[no-untyped-def]
    world.add_course(world.course, "gc-run")
    world.add_course(world.other, "gc-deleted")  # no such Classroom course: 404 on listing
    summary = world.run()
    assert [e["classroom_id"] for e in summary.errors] == ["gc-deleted"]
    assert endpoint.students("gc-run") == {"ann@school.example", "ben@school.example"}
    [event] = world.audits()
    assert (event["_outcome"], event["error_count"]) == ("failed", 1)


def test_a_configuration_error_raises(world, endpoint, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    world.add_course(world.course, "gc-run")
    monkeypatch.setenv("CLASSROOM_COURSE_MAP", "oops")
    with pytest.raises(SettingsError, match="CLASSROOM_COURSE_MAP"):
        world.run()
    assert world.audits() == []
