"""The auto-unenroll policy's `Remover` for Google Classroom: what a live run removes people
with when `UNENROLL_REMOVER` is not set and the Classroom is configured (the Classroom page's
stored key, or the environment variables common/classroom/config.py reads).
`UNENROLL_REMOVER=common.classroom.remover:from_env` names it explicitly.

Which Classroom course a Moodle course is: the Classroom page's course mapping, with
`CLASSROOM_COURSE_MAP` adding or overriding pairs. A candidate in an unmapped course is a failed
removal (audited by the run), never a guess.

Removal is from the course's students only: teachers are never removed automatically. Someone
already gone (404) counts as removed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from common.appdb import AppDB
from common.classroom.client import ClassroomClient
from common.classroom.config import COURSE_MAP_ENV, load_classroom_settings
from common.settings import Settings, load_settings
from common.unenroll.candidates import CourseRef


class UnmappedCourse(LookupError):
    """A Moodle course with no Classroom course in the mapping."""


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
                f"(map it on the Classroom page or in {COURSE_MAP_ENV})"
            ) from None

    def remove(self, course_mapping: CourseRef, email: str) -> None:
        self.client.remove_student(self.classroom_course(course_mapping), email)


def stored_remover(
    appdb: AppDB, settings: Settings, env: Mapping[str, str] | None = None
) -> ClassroomRemover | None:
    """The remover of the configured Classroom, or None when nothing is configured (no key
    stored or set, no endpoint); a configuration that is there but bad raises SettingsError."""
    config = load_classroom_settings(appdb, settings, env)
    if not config.configured:
        return None
    return ClassroomRemover(config.client(), config.course_map)


def default_remover(env: Mapping[str, str] | None = None) -> ClassroomRemover | None:
    """`stored_remover` of the app DB the environment names (the CLI's and `from_env`'s way)."""
    env = os.environ if env is None else env
    settings = load_settings(dict(env))
    appdb = AppDB(settings.database_url)
    try:
        return stored_remover(appdb, settings, env)
    finally:
        appdb.dispose()


def from_env(env: Mapping[str, str] | None = None) -> ClassroomRemover:
    """The factory `UNENROLL_REMOVER` names (called with no arguments: the process environment);
    nothing configured is a configuration error."""
    from common.unenroll.run import NoRemover

    remover = default_remover(env)
    if remover is None:
        raise NoRemover(
            "the Classroom is not configured: upload the service account key on the Classroom "
            "page or set CLASSROOM_SERVICE_ACCOUNT_FILE"
        )
    return remover
