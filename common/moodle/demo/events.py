"""The Moodle events the demo site logs, and how one becomes a logstore_standard_log row.

Fields are filled as lib/classes/event/base.php does (NOTES.md §4): the event name is the class
name with a leading backslash, component is its first namespace part, and the class name splits
at its last underscore into target and action. `other` is JSON (logstore_standard jsonformat=1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from common.moodle.demo.contexts import COURSE, MODULE, SYSTEM, SYSTEM_CONTEXT_ID, USER

# Column order of the rows built here; the writer puts `id` in front.
LOG_FIELDS = (
    "eventname", "component", "action", "target", "objecttable", "objectid", "crud", "edulevel",
    "contextid", "contextlevel", "contextinstanceid", "userid", "courseid", "relateduserid",
    "anonymous", "other", "timecreated", "origin", "ip", "realuserid",
)  # fmt: skip
TIME_FIELD = LOG_FIELDS.index("timecreated")

LEVEL_OTHER, LEVEL_TEACHING, LEVEL_PARTICIPATING = 0, 1, 2


@dataclass(frozen=True, slots=True)
class EventKind:
    eventname: str
    component: str
    action: str
    target: str
    crud: str
    edulevel: int
    objecttable: str | None


def _kind(eventname: str, crud: str, edulevel: int, objecttable: str | None = None) -> EventKind:
    component = eventname.split("\\")[1]
    target, action = eventname.rsplit("\\", 1)[1].rsplit("_", 1)
    return EventKind(eventname, component, action, target, crud, edulevel, objecttable)


USER_LOGGEDIN = _kind("\\core\\event\\user_loggedin", "r", LEVEL_OTHER, "user")
USER_CREATED = _kind("\\core\\event\\user_created", "c", LEVEL_OTHER, "user")
USER_DELETED = _kind("\\core\\event\\user_deleted", "d", LEVEL_OTHER, "user")
DASHBOARD_VIEWED = _kind("\\core\\event\\dashboard_viewed", "r", LEVEL_OTHER)
COURSE_VIEWED = _kind("\\core\\event\\course_viewed", "r", LEVEL_PARTICIPATING)
GRADE_REPORT_VIEWED = _kind("\\gradereport_grader\\event\\grade_report_viewed", "r", LEVEL_TEACHING)
USER_ENROLMENT_CREATED = _kind(
    "\\core\\event\\user_enrolment_created", "c", LEVEL_OTHER, "user_enrolments"
)
MODULE_COMPLETION_UPDATED = _kind(
    "\\core\\event\\course_module_completion_updated",
    "u",
    LEVEL_PARTICIPATING,
    "course_modules_completion",
)
COURSE_COMPLETED = _kind(
    "\\core\\event\\course_completed", "u", LEVEL_PARTICIPATING, "course_completions"
)
QUIZ_ATTEMPT_STARTED = _kind(
    "\\mod_quiz\\event\\attempt_started", "c", LEVEL_PARTICIPATING, "quiz_attempts"
)
QUIZ_ATTEMPT_SUBMITTED = _kind(
    "\\mod_quiz\\event\\attempt_submitted", "u", LEVEL_PARTICIPATING, "quiz_attempts"
)
SCO_LAUNCHED = _kind("\\mod_scorm\\event\\sco_launched", "r", LEVEL_PARTICIPATING, "scorm_scoes")

# One `<mod>\event\course_module_viewed` per module type; objecttable is the module's table.
MODULE_VIEWED = {
    modname: _kind(
        f"\\mod_{modname}\\event\\course_module_viewed", "r", LEVEL_PARTICIPATING, modname
    )
    for modname in ("forum", "page", "quiz", "scorm", "url")
}


def scorm_element_submitted(element_event: str, scorm_layout: str) -> EventKind:
    """`status_submitted`/`scoreraw_submitted`: objecttable names the layout's value table."""
    table = "scorm_scoes_value" if scorm_layout == "attempt" else "scorm_scoes_track"
    return _kind(f"\\mod_scorm\\event\\{element_event}", "u", LEVEL_PARTICIPATING, table)


def other_json(value: dict[str, Any] | None) -> str:
    # PHP's json_encode(): no spaces; an event without `other` stores "null".
    return json.dumps(value, separators=(",", ":"))


NO_OTHER = other_json(None)


@dataclass(frozen=True, slots=True)
class Where:
    """The context an event happened in, and the course it belongs to (0 for none)."""

    contextid: int
    contextlevel: int
    instanceid: int
    courseid: int

    @staticmethod
    def system() -> Where:
        return Where(SYSTEM_CONTEXT_ID, SYSTEM, 0, 0)

    @staticmethod
    def user(context_id: int, user_id: int) -> Where:
        return Where(context_id, USER, user_id, 0)

    @staticmethod
    def course(context_id: int, course_id: int) -> Where:
        return Where(context_id, COURSE, course_id, course_id)

    @staticmethod
    def module(context_id: int, cm_id: int, course_id: int) -> Where:
        # contextinstanceid at module level is course_modules.id, not the instance id.
        return Where(context_id, MODULE, cm_id, course_id)


def log_row(
    kind: EventKind,
    when: int,
    user_id: int,
    where: Where,
    *,
    objectid: int | None = None,
    relateduserid: int | None = None,
    other: str = NO_OTHER,
    ip: str | None = None,
    origin: str = "web",
) -> tuple[Any, ...]:
    """One log row in LOG_FIELDS order."""
    return (
        kind.eventname, kind.component, kind.action, kind.target, kind.objecttable, objectid,
        kind.crud, kind.edulevel, where.contextid, where.contextlevel, where.instanceid, user_id,
        where.courseid, relateduserid, 0, other, when, origin, ip, None,
    )  # fmt: skip
