"""Roster sync from a Moodle course on the test site to the local Classroom API: adds,
teachers, invitations outside the Workspace domains, removals of leavers, unmapped people
parked (and removals held for their course), a parked person synced after an import, and a
failed call that does not stop the others."""

from __future__ import annotations

import pytest

from common.appdb import AppDB
from common.classroom.client import ClassroomClient
from common.classroom.sync import sync_rosters
from common.models.identity import IdentityMapping
from common.moodle import MoodleSource
from tests.factories.sites import DAY, NOW, Site
from tests.fakes.classroom_server import ClassroomServer


@pytest.fixture
def world(site: Site, app_db_url: str, classroom_server: ClassroomServer):  # type: ignore[no-untyped-def]
    m = site.moodle
    course = m.course(fullname="Roster Sync")
    people = {
        "ann": ("ann@school.example", "student"),
        "ben": ("ben@school.example", "student"),
        "tia": ("tia@school.example", "editingteacher"),
        "gus": ("gus@elsewhere.example", "student"),  # outside the Workspace: invited
        "lee": ("lee@school.example", "student"),  # enrolment ended: a leaver
    }
    users = {}
    for key, (email, role) in people.items():
        users[key] = m.user(username=f"rs_{key}", email=f"moodle-{email}")
        ended = NOW - DAY if key == "lee" else 0
        m.enrol(users[key], course, role=role, timestart=NOW - 10 * DAY, timeend=ended)
    appdb, moodle = AppDB(app_db_url), MoodleSource(site.url)
    with appdb.transaction() as s:
        for key, (email, _role) in people.items():
            s.add(IdentityMapping(source="moodle", lms_user_id=str(users[key]), google_email=email))
    classroom_server.add_course(
        "gc1",
        students=("lee@school.example", "ann@school.example", "tia@school.example"),
        teachers=("owner@school.example",),
    )
    client = ClassroomClient.for_endpoint(
        classroom_server.base_url, workspace_domains=("school.example",), sleep=lambda _s: None
    )
    yield course, users, appdb, moodle, client
    moodle.dispose()
    appdb.dispose()


def test_enrolments_become_the_classroom_roster(world, classroom_server) -> None:  # type: ignore[no-untyped-def]
    course, _users, appdb, moodle, client = world
    summary = sync_rosters(appdb, moodle, client, {course: "gc1"}, now=NOW)
    assert (summary.parked, summary.errors) == ([], [])
    assert classroom_server.students("gc1") == {"ann@school.example", "ben@school.example"}
    # tia promoted (student in Classroom, teacher in Moodle); the Classroom-only owner stays
    assert classroom_server.teachers("gc1") == {"owner@school.example", "tia@school.example"}
    assert classroom_server.invitations == [
        {"id": "inv1", "courseId": "gc1", "userId": "gus@elsewhere.example", "role": "STUDENT"}
    ]
    # added ben + tia, invited gus; removed lee, and tia as a student
    assert (summary.added, summary.invited, summary.removed) == (2, 1, 2)
    again = sync_rosters(appdb, moodle, client, {course: "gc1"}, now=NOW)
    assert (again.added, again.removed, again.invited, again.unchanged) == (0, 0, 0, 1)


def test_unmapped_people_are_parked_then_synced_after_an_import(  # type: ignore[no-untyped-def]
    world, site: Site, classroom_server
) -> None:
    course, _users, appdb, moodle, client = world
    newcomer = site.moodle.user(username="rs_new", email="new@school.example")
    site.moodle.enrol(newcomer, course, timestart=NOW - DAY)
    summary = sync_rosters(appdb, moodle, client, {course: "gc1"}, now=NOW)
    assert [(p["user_id"], p["course_id"]) for p in summary.parked] == [(newcomer, course)]
    assert f"moodle user {newcomer}" in summary.parked[0]["error"]
    assert summary.removals_held == [course]
    assert "lee@school.example" in classroom_server.students("gc1")  # held: nobody removed
    assert "ben@school.example" in classroom_server.students("gc1")  # adds still happen

    with appdb.transaction() as s:
        s.add(
            IdentityMapping(
                source="moodle", lms_user_id=str(newcomer), google_email="new@school.example"
            )
        )
    after = sync_rosters(appdb, moodle, client, {course: "gc1"}, now=NOW)
    assert (after.parked, after.removals_held) == ([], [])
    assert classroom_server.students("gc1") == {
        "ann@school.example",
        "ben@school.example",
        "new@school.example",
    }


def test_a_failed_call_is_recorded_and_the_others_go_on(world, classroom_server) -> None:  # type: ignore[no-untyped-def]
    course, _users, appdb, moodle, client = world
    classroom_server.add_course("gc2")
    summary = sync_rosters(appdb, moodle, client, {course: "gc1", 999_999: "gone"}, now=NOW)
    assert [(e["classroom_id"], "404" in e["error"]) for e in summary.errors] == [("gone", True)]
    assert summary.exit_code == 1
    assert "ben@school.example" in classroom_server.students("gc1")


def test_quota_errors_are_retried_during_a_sync(world, classroom_server) -> None:  # type: ignore[no-untyped-def]
    course, _users, appdb, moodle, client = world
    classroom_server.throttle(3)
    summary = sync_rosters(appdb, moodle, client, {course: "gc1"}, now=NOW)
    assert summary.errors == []
    assert classroom_server.students("gc1") == {"ann@school.example", "ben@school.example"}
    assert [r.status for r in classroom_server.api_requests()][:4] == [429, 429, 429, 200]
