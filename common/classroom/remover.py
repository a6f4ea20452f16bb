"""The auto-unenroll policy's `Remover` for Google Classroom:
`UNENROLL_REMOVER=common.classroom.remover:from_env`.

Which Classroom course a Moodle course is: `CLASSROOM_COURSE_MAP`, `moodle id=classroom id`
pairs separated by commas (`12=abc123,13=def456`) — until the course mapping has its own table.
A candidate in an unmapped course is a failed removal (audited by the run), never a guess.

Credentials: `CLASSROOM_SERVICE_ACCOUNT_FILE` (the service account's JSON key, domain-wide
delegation) acting as `CLASSROOM_ADMIN_EMAIL`; `CLASSROOM_API_ENDPOINT` points the client at
another endpoint — alone (no key file), anonymously: the tests' local Classroom API.
`GOOGLE_WORKSPACE_DOMAINS` is read as common/settings.py reads it.

Removal is from the course's students only: teachers are never removed automatically. Someone
already gone (404) counts as removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from common.classroom.client import ClassroomClient
from common.settings import SettingsError
from common.unenroll.candidates import CourseRef

COURSE_MAP_ENV = "CLASSROOM_COURSE_MAP"
KEY_FILE_ENV = "CLASSROOM_SERVICE_ACCOUNT_FILE"
ADMIN_ENV = "CLASSROOM_ADMIN_EMAIL"
ENDPOINT_ENV = "CLASSROOM_API_ENDPOINT"
DOMAINS_ENV = "GOOGLE_WORKSPACE_DOMAINS"


class UnmappedCourse(LookupError):
    """A Moodle course with no Classroom course in the mapping."""


def parse_course_map(raw: str) -> dict[int, str]:
    """`12=abc123,13=def456` → {12: "abc123", 13: "def456"}; a malformed pair is a
    configuration error naming the variable and the pair."""
    mapping: dict[int, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        moodle_id, eq, classroom_id = (part.strip() for part in pair.partition("="))
        if not eq or not moodle_id.isdigit() or not classroom_id:
            raise SettingsError(f"{COURSE_MAP_ENV}: {pair[:80]!r} is not 'moodle id=classroom id'")
        if int(moodle_id) in mapping:
            raise SettingsError(f"{COURSE_MAP_ENV}: Moodle course {moodle_id} is mapped twice")
        mapping[int(moodle_id)] = classroom_id
    return mapping


class ClassroomRemover:
    def __init__(self, client: ClassroomClient, course_map: Mapping[int, str]) -> None:
        self.client = client
        self.course_map = dict(course_map)

    def classroom_course(self, course: CourseRef) -> str:
        try:
            return self.course_map[course.course_id]
        except KeyError:
            raise UnmappedCourse(
                f"Moodle course {course.course_id} ({course.shortname}) has no Classroom course "
                f"in {COURSE_MAP_ENV}"
            ) from None

    def remove(self, course_mapping: CourseRef, email: str) -> None:
        self.client.remove_student(self.classroom_course(course_mapping), email)


def client_from_env(env: Mapping[str, str]) -> ClassroomClient:
    domains = tuple(filter(None, (d.strip().lower() for d in env.get(DOMAINS_ENV, "").split(","))))
    key_file = (env.get(KEY_FILE_ENV) or "").strip()
    endpoint = (env.get(ENDPOINT_ENV) or "").strip() or None
    if not key_file:
        if endpoint:
            return ClassroomClient.for_endpoint(endpoint, workspace_domains=domains)
        raise SettingsError(f"{KEY_FILE_ENV} is not set: Classroom needs a service account key")
    admin = (env.get(ADMIN_ENV) or "").strip()
    if "@" not in admin:
        raise SettingsError(f"{ADMIN_ENV}: the Workspace administrator the service account acts as")
    try:
        info = json.loads(Path(key_file).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{KEY_FILE_ENV}: cannot read the key file: {exc}") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise SettingsError(f"{KEY_FILE_ENV}: not a service account key (type service_account)")
    return ClassroomClient.from_service_account(
        info, admin, workspace_domains=domains, api_endpoint=endpoint
    )


def from_env(env: Mapping[str, str] | None = None) -> ClassroomRemover:
    """The factory `UNENROLL_REMOVER` names (called with no arguments: the process environment)."""
    env = os.environ if env is None else env
    course_map = parse_course_map(env.get(COURSE_MAP_ENV, ""))
    if not course_map:
        raise SettingsError(f"{COURSE_MAP_ENV} is not set: no Moodle course has a Classroom course")
    return ClassroomRemover(client_from_env(env), course_map)
