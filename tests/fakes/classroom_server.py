"""A local stand-in for the Google Classroom API v1, answering as Google does.

It serves a discovery document (the one google-api-python-client ships, trimmed to the methods
ManiReports uses, real paths kept, `rootUrl` pointed here) at `/$discovery/rest?version=v1`, so
a discovery-based client built from it talks to this server:

- POST/GET `v1/courses/{courseId}/students`, DELETE `v1/courses/{courseId}/students/{userId}`
  (`courses.students.create/list/delete`), the same for `teachers`;
- POST `v1/invitations` (`invitations.create`).

Errors are Google's JSON: `{"error": {"code", "message", "status"}}` — 409 ALREADY_EXISTS (already
a student or teacher of the course, or already invited), 404 NOT_FOUND (unknown course, or
removing someone not on the roster), 429 RESOURCE_EXHAUSTED when throttled (`throttle(n)`:
the next n requests). Every request is kept in `requests` (method, path, body).
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import googleapiclient
from werkzeug.wrappers import Request, Response

from tests.fakes.local_http import LocalWsgiServer, QueuedFaults

DISCOVERY_PATH = "/$discovery/rest"
KEPT_METHODS = {
    ("courses", "students"): ("create", "delete", "list"),
    ("courses", "teachers"): ("create", "delete", "list"),
    ("invitations",): ("create",),
}
KEPT_SCHEMAS = ("ListStudentsResponse", "ListTeachersResponse", "Invitation", "Empty")
ROSTER_PATH = re.compile(r"^/v1/courses/([^/]+)/(students|teachers)(?:/([^/]+))?$")
ROLE_OF = {"students": "STUDENT", "teachers": "TEACHER"}
PAGE_SIZE = 30  # Classroom's default page size is 30


@functools.cache
def _shipped_discovery() -> dict[str, Any]:
    documents = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
    loaded: dict[str, Any] = json.loads((documents / "classroom.v1.json").read_text("utf-8"))
    return loaded


def trimmed_discovery(root_url: str) -> dict[str, Any]:
    """The shipped Classroom v1 document with only the methods used, served from ``root_url``."""
    full = _shipped_discovery()
    doc = {k: v for k, v in full.items() if k not in ("resources", "schemas")}
    doc["rootUrl"] = doc["baseUrl"] = root_url.rstrip("/") + "/"
    resources: dict[str, Any] = {}
    for path, methods in KEPT_METHODS.items():
        source = full["resources"][path[0]]
        target = resources.setdefault(path[0], {})
        for name in path[1:]:
            source = source["resources"][name]
            target = target.setdefault("resources", {}).setdefault(name, {})
        target["methods"] = {m: source["methods"][m] for m in methods}
    doc["resources"] = resources
    doc["schemas"] = {name: full["schemas"][name] for name in _referenced(full, KEPT_SCHEMAS)}
    return doc


def _referenced(full: dict[str, Any], roots: tuple[str, ...]) -> set[str]:
    """The schemas ``roots`` name, and every schema those name through `$ref`, transitively."""
    found: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        todo.extend(re.findall(r'"\$ref": "([^"]+)"', json.dumps(full["schemas"][name])))
    return found


def google_error(code: int, status: str, message: str) -> Response:
    body = {"error": {"code": code, "message": message, "status": status}}
    return Response(json.dumps(body), status=code, content_type="application/json; charset=UTF-8")


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    body: dict[str, Any] | None
    status: int


class ClassroomServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # course id -> role ("students"/"teachers") -> user ids (emails, lower-cased)
        self._rosters: dict[str, dict[str, set[str]]] = {}
        self._invitations: dict[str, dict[str, str]] = {}
        self._faults = QueuedFaults()
        self.requests: list[LoggedRequest] = []
        self._http = LocalWsgiServer(self._wsgi)

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}{DISCOVERY_PATH}?version=v1"

    def start(self) -> ClassroomServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    # --- test controls ---------------------------------------------------------------------
    def add_course(
        self, course_id: str, students: tuple[str, ...] = (), teachers: tuple[str, ...] = ()
    ) -> None:
        with self._lock:
            self._rosters[course_id] = {
                "students": {s.lower() for s in students},
                "teachers": {t.lower() for t in teachers},
            }

    def students(self, course_id: str) -> set[str]:
        with self._lock:
            return set(self._rosters[course_id]["students"])

    def teachers(self, course_id: str) -> set[str]:
        with self._lock:
            return set(self._rosters[course_id]["teachers"])

    @property
    def invitations(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(i) for i in self._invitations.values()]

    def throttle(self, times: int = 1) -> None:
        """Answer the next ``times`` requests with 429 RESOURCE_EXHAUSTED."""
        self._faults.add(
            times,
            lambda: google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute'.",
            ),
        )

    def api_requests(self) -> list[LoggedRequest]:
        """The logged requests other than for the discovery document."""
        with self._lock:
            return [r for r in self.requests if not r.path.startswith("/$discovery")]

    # --- HTTP ------------------------------------------------------------------------------
    def _wsgi(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_json(silent=True) if request.data else None
        response = self._respond(request, body)
        with self._lock:
            self.requests.append(
                LoggedRequest(request.method, request.path, body, response.status_code)
            )
        return response(environ, start_response)

    def _respond(self, request: Request, body: Any) -> Response:
        if request.path == DISCOVERY_PATH and request.method == "GET":
            if request.args.get("version") != "v1":
                return google_error(404, "NOT_FOUND", "Requested entity was not found.")
            return Response(
                json.dumps(trimmed_discovery(self.base_url)), mimetype="application/json"
            )
        fault = self._faults.next()
        if fault is not None:
            return fault
        if request.path == "/v1/invitations" and request.method == "POST":
            return self._invite(body or {})
        match = ROSTER_PATH.match(request.path)
        if not match:
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        course_id, role, user_id = match.groups()
        with self._lock:
            roster = self._rosters.get(course_id)
            if roster is None:
                return google_error(404, "NOT_FOUND", "Requested entity was not found.")
            if request.method == "POST" and user_id is None:
                email = str((body or {}).get("userId", "")).lower()
                if not email:
                    return google_error(
                        400, "INVALID_ARGUMENT", "Request contains an invalid argument."
                    )
                if email in roster["students"] or email in roster["teachers"]:
                    return google_error(409, "ALREADY_EXISTS", "Requested entity already exists")
                roster[role].add(email)
                return _json(_member(course_id, email))
            if request.method == "DELETE" and user_id is not None:
                email = user_id.lower()
                if email not in roster[role]:
                    return google_error(404, "NOT_FOUND", "Requested entity was not found.")
                roster[role].discard(email)
                return _json({})
            if request.method == "GET" and user_id is None:
                return self._list(course_id, role, sorted(roster[role]), request)
        return google_error(405, "INVALID_ARGUMENT", "Method not allowed.")

    def _list(self, course_id: str, role: str, emails: list[str], request: Request) -> Response:
        start = int(request.args.get("pageToken") or 0)
        size = int(request.args.get("pageSize") or PAGE_SIZE)
        page = emails[start : start + size]
        out: dict[str, Any] = {role: [_member(course_id, e) for e in page]}
        if start + size < len(emails):
            out["nextPageToken"] = str(start + size)
        return _json(out)

    def _invite(self, body: dict[str, Any]) -> Response:
        course_id, role = str(body.get("courseId", "")), str(body.get("role", ""))
        email = str(body.get("userId", "")).lower()
        if not email or role not in ("STUDENT", "TEACHER", "OWNER"):
            return google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        with self._lock:
            roster = self._rosters.get(course_id)
            if roster is None:
                return google_error(404, "NOT_FOUND", "Requested entity was not found.")
            key = f"{course_id}:{email}"
            if key in self._invitations or email in roster["students"] | roster["teachers"]:
                return google_error(409, "ALREADY_EXISTS", "Requested entity already exists")
            invitation = {
                "id": f"inv{len(self._invitations) + 1}",
                "courseId": course_id,
                "userId": email,
                "role": role,
            }
            self._invitations[key] = invitation
            return _json(invitation)


def _member(course_id: str, email: str) -> dict[str, Any]:
    return {
        "courseId": course_id,
        "userId": email,
        "profile": {"id": email, "emailAddress": email, "name": {"fullName": email}},
    }


def _json(payload: Any) -> Response:
    return Response(json.dumps(payload), status=200, mimetype="application/json")
