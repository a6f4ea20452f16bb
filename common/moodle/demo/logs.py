"""The demo site's standard log (logstore_standard_log), one day of the window at a time.

Each day gets a share of the wanted row count: weekdays busier than weekends, and a rising
trend so 7/30/90-day comparisons have something to show. The day's rows are the learning steps
the progress simulator scheduled (each preceded by a login and a course view), admin events
(accounts created and deleted, enrolments), then browsing sessions of enrolled users (login,
dashboard, a few courses and their activities) until the day's share is reached. Rows are
sorted by time before they get ids, so ids grow with time as on a live site.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import accumulate
from operator import itemgetter
from typing import Any

from common.moodle.demo.access import USER_LASTACCESS_COLUMNS, AccessTracker
from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.contexts import USER, ContextTree
from common.moodle.demo.events import (
    COURSE_VIEWED,
    DASHBOARD_VIEWED,
    GRADE_REPORT_VIEWED,
    LOG_FIELDS,
    MODULE_VIEWED,
    TIME_FIELD,
    USER_CREATED,
    USER_DELETED,
    USER_ENROLMENT_CREATED,
    USER_LOGGEDIN,
    Where,
    log_row,
    other_json,
)
from common.moodle.demo.model import ADMIN_ID, DAY, Course, DemoSite, Person, topic_rng
from common.moodle.demo.progress import Burst

LOG_COLUMNS = ("id", *LOG_FIELDS)

# Share of sessions starting in each UTC hour: a working day with a lunch dip.
_HOURLY = (1, 1, 1, 1, 1, 2, 4, 7, 10, 11, 10, 9, 7, 9, 10, 9, 8, 6, 5, 4, 3, 3, 2, 1)
_HOURS = range(24)
_HOUR_CUM = list(accumulate(_HOURLY))
_SYSTEM = Where.system()
# Monday .. Sunday
_WEEKDAY = (1.0, 1.0, 1.0, 0.95, 0.85, 0.4, 0.45)
# The last day of the window is this much busier than the first.
_GROWTH = 0.5

_time = itemgetter(TIME_FIELD)
_USERID = LOG_FIELDS.index("userid")


def day_budgets(site: DemoSite, total_rows: int) -> list[int]:
    """Rows per day, summing exactly to `total_rows`."""
    clock = site.clock
    weights = [
        _WEEKDAY[datetime.fromtimestamp(clock.start + day * DAY, UTC).weekday()]
        * (1 + _GROWTH * day / max(1, clock.days - 1))
        for day in range(clock.days)
    ]
    bounds = [round(total_rows * share) for share in accumulate(w / sum(weights) for w in weights)]
    return [high - low for low, high in zip([0, *bounds], bounds, strict=False)]


class LogSimulator:
    def __init__(self, site: DemoSite, contexts: ContextTree, seed: int) -> None:
        self.site, self.seed = site, seed
        self.user_where = {p.id: Where.user(contexts.id_of(USER, p.id), p.id) for p in site.people}
        self.course_where = {c.id: Where.course(c.context_id, c.id) for c in site.courses}
        self.viewable = {
            c.id: [
                (MODULE_VIEWED[a.modname], Where.module(a.context_id, a.cm_id, c.id), a.instance)
                for a in c.activities
                if not a.deletioninprogress
            ]
            for c in site.courses
        }
        self.login_other = {p.id: other_json({"username": p.username}) for p in site.people}
        self.courses_of: dict[int, list[tuple[int, int, Course]]] = defaultdict(list)
        for e in site.enrolments:
            if e.status == 0:
                self.courses_of[e.user_id].append((e.timestart, e.timeend, e.course))
        browsers = [p for p in site.people if p.can_log_in and p.id in self.courses_of]
        browsers.sort(key=lambda p: (min(start for start, _, _ in self.courses_of[p.id]), p.id))
        self.browsers = browsers
        self.browser_since = [min(s for s, _, _ in self.courses_of[p.id]) for p in browsers]
        self.browser_cum = list(accumulate(p.engagement for p in browsers))
        self.site_events = self._site_events()

    def run(
        self,
        writer: BulkWriter,
        bursts: dict[int, list[Burst]],
        access: AccessTracker,
        total_rows: int,
        on_day: Callable[[int, int], None] | None = None,
    ) -> int:
        """Write the log and user_lastaccess; returns the number of log rows.

        `on_day(days_done, rows_so_far)` is called after each day is written.
        """
        clock, next_id = self.site.clock, 1
        carried: list[tuple[Any, ...]] = []
        for day, budget in enumerate(day_budgets(self.site, total_rows)):
            rng = topic_rng(self.seed, f"logs/{day}")
            day_start = clock.start + day * DAY
            day_end = min(day_start + DAY, clock.now)
            rows = carried + self.site_events.get(day, [])
            for burst in bursts.get(day, []):
                rows += self._anchor(rng, burst, day_start) + burst.rows
            # A step that runs past midnight (a late quiz) finishes in the next day's rows, so
            # ids keep growing with time.
            carried = [row for row in rows if row[TIME_FIELD] >= day_end]
            rows = [row for row in rows if row[TIME_FIELD] < day_end]
            self._browse(rng, rows, budget, day_start, day_end)
            rows.sort(key=_time)
            access.record_log_rows(rows)
            writer.insert("logstore_standard_log", LOG_COLUMNS, self._with_ids(rows, next_id))
            next_id += len(rows)
            if on_day is not None:
                on_day(day + 1, next_id - 1)
        writer.insert("user_lastaccess", USER_LASTACCESS_COLUMNS, access.user_lastaccess_rows())
        return next_id - 1

    @staticmethod
    def _with_ids(rows: list[tuple[Any, ...]], first_id: int) -> Iterator[tuple[Any, ...]]:
        return ((row_id, *row) for row_id, row in enumerate(rows, start=first_id))

    def _anchor(self, rng: random.Random, burst: Burst, day_start: int) -> list[tuple[Any, ...]]:
        """The login and course view that lead to a learning step (kept inside its day)."""
        if not burst.anchored:
            return []
        person = self.site.person(burst.user_id)
        logged_in = max(day_start, burst.start - rng.randint(60, 600))
        viewed = max(logged_in, burst.start - rng.randint(10, 50))
        return [
            self._login(person, logged_in),
            log_row(
                COURSE_VIEWED, viewed, person.id, self.course_where[burst.course.id], ip=person.ip
            ),
        ]

    def _login(self, person: Person, when: int) -> tuple[Any, ...]:
        return log_row(
            USER_LOGGEDIN, when, person.id, _SYSTEM, objectid=person.id,
            other=self.login_other[person.id], ip=person.ip,
        )  # fmt: skip

    def _browse(
        self,
        rng: random.Random,
        rows: list[tuple[Any, ...]],
        budget: int,
        day_start: int,
        day_end: int,
    ) -> None:
        """Append sessions until the day holds `budget` rows, cutting the last session short."""
        ready = bisect.bisect_right(self.browser_since, day_end)
        if ready == 0:
            return
        people, cum = self.browsers[:ready], self.browser_cum[:ready]
        mandatory, idle_rounds = len(rows), 0
        # Give up on a day whose candidates have nothing open (all enrolments start later).
        while len(rows) < budget and idle_rounds < 50:
            before = len(rows)
            for person in rng.choices(people, cum_weights=cum, k=64):
                hour = rng.choices(_HOURS, cum_weights=_HOUR_CUM)[0]
                start = day_start + (hour * 3600 - day_start) % DAY + rng.randrange(3600)
                if start < day_end:
                    self._session(rng, person, start, day_end, rows)
            idle_rounds = idle_rounds + 1 if len(rows) == before else 0
        del rows[max(budget, mandatory) :]

    def _session(
        self, rng: random.Random, person: Person, t: int, day_end: int, rows: list[tuple[Any, ...]]
    ) -> None:
        courses = [c for s, e, c in self.courses_of[person.id] if s <= t and (not e or e > t)]
        if not courses:
            return
        add, uid, ip = rows.append, person.id, person.ip
        add(self._login(person, t))
        t += 2 + int(rng.random() * 20)
        add(log_row(DASHBOARD_VIEWED, t, uid, self.user_where[uid], ip=ip))
        for course in rng.sample(courses, min(len(courses), rng.randint(1, 3))):
            t += 15 + int(rng.random() * 240)
            if t >= day_end:
                return
            where = self.course_where[course.id]
            add(log_row(COURSE_VIEWED, t, uid, where, ip=ip))
            if person.kind == "teacher" and rng.random() < 0.3:
                t += 30
                add(log_row(GRADE_REPORT_VIEWED, t, uid, where, ip=ip))
            viewable = self.viewable[course.id]
            for _ in range(rng.randint(0, 4)):
                t += 15 + int(rng.random() * 300)
                if t >= day_end:
                    return
                kind, module_where, instance = viewable[int(rng.random() * len(viewable))]
                add(log_row(kind, t, uid, module_where, objectid=instance, ip=ip))

    def _site_events(self) -> dict[int, list[tuple[Any, ...]]]:
        """Accounts created and deleted, enrolments made, by the day they happened; each
        actor logs in before their first such event of the day."""
        site, clock = self.site, self.site.clock
        admin = site.person(ADMIN_ID)
        by_day: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for p in site.people[ADMIN_ID:]:
            where = self.user_where[p.id]
            if clock.in_window(p.timecreated):
                row = log_row(USER_CREATED, p.timecreated, ADMIN_ID, where, objectid=p.id,
                              relateduserid=p.id, ip=admin.ip)  # fmt: skip
                by_day[clock.day_index(p.timecreated)].append(row)
            if p.deleted and clock.in_window(p.timedeleted):
                other = {"username": p.username, "email": p.email, "idnumber": p.idnumber,
                         "picture": 0, "mnethostid": 1}  # fmt: skip
                row = log_row(USER_DELETED, p.timedeleted, ADMIN_ID, where, objectid=p.id,
                              relateduserid=p.id, other=other_json(other), ip=admin.ip)  # fmt: skip
                by_day[clock.day_index(p.timedeleted)].append(row)
        for e in site.enrolments:
            if clock.in_window(e.timestart):
                actor = site.person(e.modifierid)
                row = log_row(
                    USER_ENROLMENT_CREATED, e.timestart, actor.id, self.course_where[e.course.id],
                    objectid=e.id, relateduserid=e.user_id,
                    other=other_json({"enrol": e.method}), ip=actor.ip,
                )  # fmt: skip
                by_day[clock.day_index(e.timestart)].append(row)
        for day, rows in by_day.items():
            day_start = clock.start + day * DAY
            first_acts: dict[int, int] = {}
            for row in rows:
                actor_id, when = row[_USERID], row[TIME_FIELD]
                first_acts[actor_id] = min(when, first_acts.get(actor_id, when))
            rows += [
                self._login(site.person(actor_id), max(day_start, when - 120))
                for actor_id, when in sorted(first_acts.items())
            ]
        return by_day
