"""A thin wrapper over google-api-python-client's Classroom v1 service.

Production: a service account with domain-wide delegation acting as a Workspace administrator
(`from_service_account`); the shipped discovery document, so building needs no network.
Tests: `for_endpoint` — anonymous credentials and a discovery document and API served by a local
stand-in (tests/fakes/classroom_server.py).

Roster changes are idempotent from ManiReports' side: 409 ALREADY_EXISTS (already on the roster,
already invited) and 404 NOT_FOUND on a removal (already gone) count as done. Quota errors (429,
or a RESOURCE_EXHAUSTED status) are retried with exponential back-off, a bounded number of times;
anything else raises `ClassroomError` naming the call, the status and Google's message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httplib2
from google.auth.credentials import AnonymousCredentials, Credentials
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/classroom.rosters",)
STUDENT, TEACHER = "STUDENT", "TEACHER"
QUOTA_STATUSES = frozenset({"RESOURCE_EXHAUSTED"})
HTTP_TIMEOUT_S = 30


class ClassroomError(Exception):
    """A Classroom call that failed (after any retries): the call, the HTTP status, Google's
    `error.status` and message."""

    def __init__(self, call: str, code: int, status: str, message: str) -> None:
        super().__init__(f"{call}: {code} {status}: {message}".strip())
        self.call, self.code, self.status, self.message = call, code, status, message


@dataclass(frozen=True)
class Backoff:
    """Waits before retrying a quota error: first_s, doubling, at most max_s; `attempts` calls in
    all (the first included)."""

    attempts: int = 5
    first_s: float = 1.0
    max_s: float = 32.0

    def delay(self, retry: int) -> float:
        return float(min(self.max_s, self.first_s * 2**retry))


@dataclass(frozen=True)
class Outcome:
    """What one roster change did: "added", "invited", "removed", "already" (409 on an add),
    "gone" (404 on a removal)."""

    action: str
    email: str
    course_id: str


def _error_of(exc: HttpError) -> tuple[int, str, str]:
    code = int(getattr(exc.resp, "status", 0) or 0)
    status, message = "", str(exc.reason or "")
    try:
        error = json.loads(exc.content or b"{}").get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if isinstance(error, dict):
        status = str(error.get("status") or "")
        message = str(error.get("message") or message)
    return code, status, message


class ClassroomClient:
    def __init__(
        self,
        service: Any,
        *,
        workspace_domains: Iterable[str] = (),
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._service = service
        self.workspace_domains = tuple(d.lower() for d in workspace_domains)
        self._backoff = backoff
        self._sleep = sleep

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_service_account(
        cls,
        info: Mapping[str, Any],
        admin_email: str,
        *,
        workspace_domains: Iterable[str] = (),
        api_endpoint: str | None = None,
        **kwargs: Any,
    ) -> ClassroomClient:
        """Acting as ``admin_email`` through the service account's domain-wide delegation."""
        credentials = service_account.Credentials.from_service_account_info(
            dict(info), scopes=list(SCOPES), subject=admin_email
        )
        options = {"api_endpoint": api_endpoint} if api_endpoint else None
        service = build(
            "classroom",
            "v1",
            http=AuthorizedHttp(credentials, http=httplib2.Http(timeout=HTTP_TIMEOUT_S)),
            client_options=options,
            static_discovery=True,
            cache_discovery=False,
        )
        return cls(service, workspace_domains=workspace_domains, **kwargs)

    @classmethod
    def for_endpoint(
        cls,
        api_endpoint: str,
        *,
        credentials: Credentials | None = None,
        workspace_domains: Iterable[str] = (),
        **kwargs: Any,
    ) -> ClassroomClient:
        """Against a stand-in at ``api_endpoint`` serving its own discovery document."""
        endpoint = api_endpoint.rstrip("/")
        http = AuthorizedHttp(
            credentials or AnonymousCredentials(), http=httplib2.Http(timeout=HTTP_TIMEOUT_S)
        )
        service = build(
            "classroom",
            "v1",
            discoveryServiceUrl=f"{endpoint}/$discovery/rest?version=v1",
            http=http,
            client_options={"api_endpoint": endpoint},
            static_discovery=False,
            cache_discovery=False,
        )
        return cls(service, workspace_domains=workspace_domains, **kwargs)

    # --- roster changes --------------------------------------------------------------------
    def in_workspace(self, email: str) -> bool:
        """Inside the Workspace domains (every address is, when none are configured)."""
        if not self.workspace_domains:
            return True
        return email.rpartition("@")[2].lower() in self.workspace_domains

    def add_student(self, course_id: str, email: str) -> Outcome:
        return self._add(STUDENT, course_id, email)

    def add_teacher(self, course_id: str, email: str) -> Outcome:
        return self._add(TEACHER, course_id, email)

    def remove_student(self, course_id: str, email: str) -> Outcome:
        students = self._service.courses().students()
        return self._remove("courses.students.delete", students, course_id, email)

    def remove_teacher(self, course_id: str, email: str) -> Outcome:
        teachers = self._service.courses().teachers()
        return self._remove("courses.teachers.delete", teachers, course_id, email)

    def invite(self, course_id: str, email: str, role: str = STUDENT) -> Outcome:
        """An invitation (people outside the Workspace domains cannot be added directly)."""
        body = {"courseId": course_id, "userId": email, "role": role}
        request = self._service.invitations().create(body=body)
        done = self._execute("invitations.create", request, ok_codes=(409,)) is not None
        return Outcome("invited" if done else "already", email, course_id)

    def students(self, course_id: str) -> list[str]:
        return self._list("students", course_id)

    def teachers(self, course_id: str) -> list[str]:
        return self._list("teachers", course_id)

    # --- internals -------------------------------------------------------------------------
    def _add(self, role: str, course_id: str, email: str) -> Outcome:
        if not self.in_workspace(email):
            return self.invite(course_id, email, role)
        resource = self._service.courses()
        if role == STUDENT:
            call, request = "courses.students.create", resource.students()
        else:
            call, request = "courses.teachers.create", resource.teachers()
        made = request.create(courseId=course_id, body={"userId": email})
        done = self._execute(call, made, ok_codes=(409,)) is not None
        return Outcome("added" if done else "already", email, course_id)

    def _remove(self, call: str, resource: Any, course_id: str, email: str) -> Outcome:
        request = resource.delete(courseId=course_id, userId=email)
        done = self._execute(call, request, ok_codes=(404,)) is not None
        return Outcome("removed" if done else "gone", email, course_id)

    def _list(self, role: str, course_id: str) -> list[str]:
        resource = getattr(self._service.courses(), role)()
        emails: list[str] = []
        token: str | None = None
        while True:
            page = self._execute(
                f"courses.{role}.list", resource.list(courseId=course_id, pageToken=token)
            )
            for member in page.get(role, []):
                profile = member.get("profile") or {}
                emails.append(str(profile.get("emailAddress") or member.get("userId")))
            token = page.get("nextPageToken")
            if not token:
                return emails

    def _execute(self, call: str, request: Any, ok_codes: tuple[int, ...] = ()) -> Any:
        """The response; None when the error is one of ``ok_codes`` (done already)."""
        for retry in range(self._backoff.attempts):
            try:
                return request.execute(num_retries=0)
            except HttpError as exc:
                code, status, message = _error_of(exc)
                if code in ok_codes:
                    return None
                quota = code == 429 or status in QUOTA_STATUSES
                if not quota or retry + 1 >= self._backoff.attempts:
                    raise ClassroomError(call, code, status, message) from None
                delay = self._backoff.delay(retry)
                log.info("%s: quota (%s %s), retrying in %.1fs", call, code, status, delay)
                self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")
