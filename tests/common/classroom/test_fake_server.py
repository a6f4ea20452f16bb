"""The Classroom fake answers a discovery-built client as Google does (paths, error bodies)."""

from __future__ import annotations

import json

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from tests.fakes.classroom_server import ClassroomServer


def service(server: ClassroomServer):  # noqa: ANN201 - googleapiclient's Resource is untyped
    return build(
        "classroom",
        "v1",
        discoveryServiceUrl=server.discovery_url,
        static_discovery=False,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": server.base_url},
        cache_discovery=False,
    )


def error_of(exc: HttpError) -> dict:
    return json.loads(exc.content)["error"]


def test_roster_paths_and_error_bodies(classroom_server: ClassroomServer) -> None:
    classroom_server.add_course("c1", teachers=("t@school.example",))
    api = service(classroom_server)
    made = api.courses().students().create(courseId="c1", body={"userId": "a@school.example"})
    assert made.execute()["userId"] == "a@school.example"
    with pytest.raises(HttpError) as again:
        api.courses().students().create(
            courseId="c1", body={"userId": "t@school.example"}
        ).execute()
    assert again.value.resp.status == 409
    assert error_of(again.value) == {
        "code": 409,
        "message": "Requested entity already exists",
        "status": "ALREADY_EXISTS",
    }
    listed = api.courses().students().list(courseId="c1").execute()
    assert [s["userId"] for s in listed["students"]] == ["a@school.example"]
    api.courses().students().delete(courseId="c1", userId="a@school.example").execute()
    with pytest.raises(HttpError) as gone:
        api.courses().students().delete(courseId="c1", userId="a@school.example").execute()
    assert gone.value.resp.status == 404 and error_of(gone.value)["status"] == "NOT_FOUND"
    with pytest.raises(HttpError) as no_course:
        api.courses().teachers().list(courseId="nope").execute()
    assert no_course.value.resp.status == 404
    paths = [(r.method, r.path) for r in classroom_server.api_requests()]
    assert paths[0] == ("POST", "/v1/courses/c1/students")
    assert ("DELETE", "/v1/courses/c1/students/a@school.example") in paths


def test_throttle_answers_resource_exhausted_then_recovers(
    classroom_server: ClassroomServer,
) -> None:
    classroom_server.add_course("c1")
    api = service(classroom_server)
    classroom_server.throttle(1)
    with pytest.raises(HttpError) as throttled:
        api.courses().teachers().list(courseId="c1").execute()
    assert throttled.value.resp.status == 429
    assert error_of(throttled.value)["status"] == "RESOURCE_EXHAUSTED"
    assert api.courses().teachers().list(courseId="c1").execute() == {"teachers": []}


def test_invitation_once(classroom_server: ClassroomServer) -> None:
    classroom_server.add_course("c1")
    api = service(classroom_server)
    body = {"courseId": "c1", "userId": "guest@elsewhere.example", "role": "STUDENT"}
    assert api.invitations().create(body=body).execute()["role"] == "STUDENT"
    with pytest.raises(HttpError) as again:
        api.invitations().create(body=body).execute()
    assert again.value.resp.status == 409
    assert classroom_server.invitations == [{"id": "inv1", **body}]
