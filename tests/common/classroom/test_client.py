"""The Classroom client against the local Classroom API (discovery document, paths, errors)."""

from __future__ import annotations

import pytest

from common.classroom.client import Backoff, ClassroomClient, ClassroomError, Outcome
from tests.fakes.classroom_server import ClassroomServer

DOMAIN = "school.example"


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(classroom_server: ClassroomServer, slept: list[float]) -> ClassroomClient:
    classroom_server.add_course(
        "c1", students=("old@school.example",), teachers=("t@school.example",)
    )
    return ClassroomClient.for_endpoint(
        classroom_server.base_url,
        workspace_domains=(DOMAIN,),
        backoff=Backoff(attempts=4, first_s=0.5, max_s=1.5),
        sleep=slept.append,
    )


def test_add_and_remove_students_and_teachers(
    client: ClassroomClient, classroom_server: ClassroomServer
) -> None:
    assert client.add_student("c1", "new@school.example") == Outcome(
        "added", "new@school.example", "c1"
    )
    assert client.add_teacher("c1", "t2@school.example").action == "added"
    assert classroom_server.students("c1") == {"old@school.example", "new@school.example"}
    assert classroom_server.teachers("c1") == {"t@school.example", "t2@school.example"}
    assert sorted(client.students("c1")) == ["new@school.example", "old@school.example"]
    assert client.remove_student("c1", "old@school.example").action == "removed"
    assert client.remove_teacher("c1", "t@school.example").action == "removed"
    assert classroom_server.students("c1") == {"new@school.example"}
    assert classroom_server.teachers("c1") == {"t2@school.example"}
    assert client.teachers("c1") == ["t2@school.example"]


def test_already_there_and_already_gone_are_success(
    client: ClassroomClient, classroom_server: ClassroomServer
) -> None:
    assert client.add_student("c1", "old@school.example").action == "already"
    assert client.add_student("c1", "t@school.example").action == "already"  # teacher there
    assert client.remove_student("c1", "nobody@school.example").action == "gone"
    assert client.remove_teacher("c1", "old@school.example").action == "gone"
    statuses = [r.status for r in classroom_server.api_requests()]
    assert statuses == [409, 409, 404, 404]
    assert classroom_server.students("c1") == {"old@school.example"}


def test_quota_errors_retried_with_back_off_then_succeed(
    client: ClassroomClient, classroom_server: ClassroomServer, slept: list[float]
) -> None:
    classroom_server.throttle(3)
    assert client.add_student("c1", "new@school.example").action == "added"
    assert slept == [0.5, 1.0, 1.5]  # doubling, capped at max_s
    assert [r.status for r in classroom_server.api_requests()] == [429, 429, 429, 200]


def test_quota_retries_are_bounded(
    client: ClassroomClient, classroom_server: ClassroomServer, slept: list[float]
) -> None:
    classroom_server.throttle(4)
    with pytest.raises(ClassroomError) as failed:
        client.remove_student("c1", "old@school.example")
    assert failed.value.code == 429 and failed.value.status == "RESOURCE_EXHAUSTED"
    assert "courses.students.delete" in str(failed.value)
    assert len(slept) == 3
    assert classroom_server.students("c1") == {"old@school.example"}


def test_other_errors_are_not_retried(
    client: ClassroomClient, classroom_server: ClassroomServer, slept: list[float]
) -> None:
    with pytest.raises(ClassroomError) as failed:
        client.add_student("no-such-course", "new@school.example")  # 404 on an add is an error
    assert failed.value.code == 404 and failed.value.status == "NOT_FOUND"
    assert slept == []


def test_outside_domain_people_are_invited(
    client: ClassroomClient, classroom_server: ClassroomServer
) -> None:
    assert client.add_student("c1", "Guest@Elsewhere.example").action == "invited"
    assert client.add_teacher("c1", "helper@elsewhere.example").action == "invited"
    assert client.add_student("c1", "guest@elsewhere.example").action == "already"
    assert classroom_server.invitations == [
        {"id": "inv1", "courseId": "c1", "userId": "guest@elsewhere.example", "role": "STUDENT"},
        {"id": "inv2", "courseId": "c1", "userId": "helper@elsewhere.example", "role": "TEACHER"},
    ]
    assert classroom_server.students("c1") == {"old@school.example"}  # not added directly


def test_no_domains_configured_adds_everyone_directly(classroom_server: ClassroomServer) -> None:
    classroom_server.add_course("c2")
    client = ClassroomClient.for_endpoint(classroom_server.base_url)
    assert client.add_student("c2", "anyone@elsewhere.example").action == "added"
    assert classroom_server.invitations == []


def test_list_pages_through_the_roster(classroom_server: ClassroomServer) -> None:
    emails = tuple(f"s{i:02d}@school.example" for i in range(65))
    classroom_server.add_course("big", students=emails)
    client = ClassroomClient.for_endpoint(classroom_server.base_url)
    assert sorted(client.students("big")) == sorted(emails)
    assert len(classroom_server.api_requests()) == 3  # 30 + 30 + 5


def service_account_info() -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "manireports-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "sync@manireports-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_service_account_acts_as_the_admin_with_roster_scope() -> None:
    client = ClassroomClient.from_service_account(
        service_account_info(), "admin@school.example", workspace_domains=(DOMAIN,)
    )
    credentials = client._service._http.credentials
    assert credentials.service_account_email.startswith("sync@")
    assert credentials._subject == "admin@school.example"  # domain-wide delegation
    assert credentials.scopes == ["https://www.googleapis.com/auth/classroom.rosters"]
    assert client._service._baseUrl == "https://classroom.googleapis.com/"
