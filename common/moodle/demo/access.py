"""Who accessed what and when, gathered while the demo site's activity is generated.

Moodle keeps this in `user` (firstaccess, lastaccess, lastlogin, currentlogin, lastip) and in
`user_lastaccess` (per user and course, never for the site course); the demo site derives both
from the same events it logs, so the three never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from common.moodle.demo.events import LOG_FIELDS
from common.moodle.demo.model import SITE_COURSE_ID

_USERID = LOG_FIELDS.index("userid")
_COURSEID = LOG_FIELDS.index("courseid")
_TIME = LOG_FIELDS.index("timecreated")
_ORIGIN = LOG_FIELDS.index("origin")
_EVENTNAME = LOG_FIELDS.index("eventname")
_LOGGEDIN = "\\core\\event\\user_loggedin"

USER_LASTACCESS_COLUMNS = ("id", "userid", "courseid", "timeaccess")


class AccessTracker:
    def __init__(self) -> None:
        self.first_access: dict[int, int] = {}
        self.last_access: dict[int, int] = {}
        # user id -> (lastlogin, currentlogin): Moodle shifts currentlogin into lastlogin.
        self.logins: dict[int, tuple[int, int]] = {}
        self.course_access: dict[tuple[int, int], int] = {}

    def visit(self, user_id: int, course_id: int, when: int) -> None:
        if when < self.first_access.get(user_id, when + 1):
            self.first_access[user_id] = when
        if when > self.last_access.get(user_id, 0):
            self.last_access[user_id] = when
        if course_id and course_id != SITE_COURSE_ID:
            key = (user_id, course_id)
            if when > self.course_access.get(key, 0):
                self.course_access[key] = when

    def login(self, user_id: int, when: int) -> None:
        # Keep the two latest logins, whatever order they are reported in.
        last, current = self.logins.get(user_id, (0, 0))
        if when > current:
            self.logins[user_id] = (current, when)
        elif when > last:
            self.logins[user_id] = (when, current)
        self.visit(user_id, 0, when)

    def record_log_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Take in log rows in time order; cron and CLI rows are nobody's access."""
        for row in rows:
            if row[_ORIGIN] != "web" or not row[_USERID]:
                continue
            if row[_EVENTNAME] == _LOGGEDIN:
                self.login(row[_USERID], row[_TIME])
            else:
                self.visit(row[_USERID], row[_COURSEID] or 0, row[_TIME])

    def user_lastaccess_rows(self) -> Iterator[tuple[int, int, int, int]]:
        for row_id, ((user_id, course_id), when) in enumerate(
            sorted(self.course_access.items()), start=1
        ):
            yield (row_id, user_id, course_id, when)
