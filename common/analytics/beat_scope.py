"""Which beats a heartbeat token may send: only for a course its user is actively enrolled in,
and for an activity (`cm`) of that course.

The beat endpoint takes thousands of beats a second, each user beating every 20-30 s for the
same course, so answers are kept in process for TTL_S: a user's active course ids (one query
per user per minute, whatever course they beat for) and a course's module ids. The cache is
bounded; when full, the oldest entries go. A change in Moodle (unenrolment, suspension) takes
effect within TTL_S.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import BindParameter, Integer, Select, bindparam, or_, select

from common.moodle import MoodleSource

TTL_S = 60.0
MAX_ENTRIES = 100_000
LOAD_WAIT_S = 5.0
SITE_COURSE_ID = 1  # the front page: nobody is enrolled in it
NOT_CACHED = "not cached"  # cached_refusal's answer when only a query can tell


class TTLCache:
    """A small thread-safe map whose entries expire after `ttl_s` and whose size is bounded.
    Concurrent misses of one key wait for a single load (a page's first beats arrive together)."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, frozenset[int]]] = OrderedDict()
        self._loading: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], frozenset[int]]) -> frozenset[int]:
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > self.clock():
                return found[1]
            loading = self._loading.get(key)
            if loading is None:
                loading = self._loading[key] = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            loading.wait(LOAD_WAIT_S)
            with self._lock:
                found = self._entries.get(key)
            return found[1] if found is not None else load()
        try:
            value = load()  # outside the lock: a slow query does not hold up cached answers
            with self._lock:
                self._entries[key] = (self.clock() + self.ttl_s, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return value
        finally:
            with self._lock:
                del self._loading[key]
            loading.set()

    def peek(self, key: Hashable) -> frozenset[int] | None:
        """The cached value if it is fresh; None (and no load) otherwise."""
        with self._lock:
            found = self._entries.get(key)
        return found[1] if found is not None and found[0] > self.clock() else None

    def __len__(self) -> int:
        return len(self._entries)


class BeatScope:
    def __init__(self, source: MoodleSource, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES):
        self.source = source
        self._courses = TTLCache(ttl_s, max_entries)
        self._modules = TTLCache(ttl_s, max_entries)
        # Built once: building a statement costs more than running it.
        self._active_courses_query = _active_courses_query(source)
        cm = source.tables.course_modules
        self._modules_query = select(cm.c.id).where(cm.c.course == bindparam("course"))

    def refusal(self, user_id: int, course_id: int, cm_id: int, now: float) -> str | None:
        """None if the beat may count; else the field that is out of scope ("course" or "cm")."""
        return self._refusal(user_id, course_id, cm_id, now, cached_only=False)

    def cached_refusal(self, user_id: int, course_id: int, cm_id: int, now: float) -> str | None:
        """As `refusal`, from the cache alone: NOT_CACHED when answering needs a query (an
        event loop then asks `refusal` on a thread, which shares this cache)."""
        return self._refusal(user_id, course_id, cm_id, now, cached_only=True)

    def _refusal(
        self, user_id: int, course_id: int, cm_id: int, now: float, *, cached_only: bool
    ) -> str | None:
        if course_id == SITE_COURSE_ID:
            return "course"
        if cached_only:
            courses = self._courses.peek(user_id)
        else:
            courses = self._courses.get(user_id, lambda: self._load(
                self._active_courses_query, user=user_id, now=int(now)))  # fmt: skip
        if courses is None:
            return NOT_CACHED
        if course_id not in courses:
            return "course"
        if cm_id:
            if cached_only:
                modules = self._modules.peek(course_id)
            else:
                modules = self._modules.get(course_id, lambda: self._load(
                    self._modules_query, course=course_id))  # fmt: skip
            if modules is None:
                return NOT_CACHED
            if cm_id not in modules:
                return "cm"
        return None

    def _load(self, query: Select[Any], **params: int) -> frozenset[int]:
        with self.source.engine.connect() as conn:
            return frozenset(int(i) for i in conn.scalars(query, params))


def _active_courses_query(source: MoodleSource) -> Select[Any]:
    """Courses a user is actively enrolled in (NOTES.md §6), if the account is usable."""
    t = source.tables
    ue, e, u = t.user_enrolments, t.enrol, t.user
    now: BindParameter[int] = bindparam("now", type_=Integer)
    return (
        select(e.c.courseid)
        .join(ue, ue.c.enrolid == e.c.id)
        .join(u, u.c.id == ue.c.userid)
        .where(
            ue.c.userid == bindparam("user"),
            ue.c.status == 0,
            e.c.status == 0,
            ue.c.timestart <= now,
            or_(ue.c.timeend == 0, ue.c.timeend > now),
            u.c.deleted == 0,
            u.c.suspended == 0,
        )
    )
