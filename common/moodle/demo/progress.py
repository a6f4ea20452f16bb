"""How far each learner got in each course, and what that left in the database.

Each enrolment gets a pace from the learner's engagement: the learner first opens the course a
little after enrolling, then completes the tracked activities in order. Engaged learners
finish; the rest stop part-way, often in the middle of a quiz or SCORM package. The outcome is
written where Moodle keeps it (course_completions with timecompleted NULL until complete,
course_modules_completion, quiz attempts and grades, SCORM tracks, the gradebook), and every
step inside the seeded window becomes a burst of log events for the log simulator.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import count
from typing import Any, NamedTuple

from common.moodle.demo.access import AccessTracker
from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.events import (
    COURSE_COMPLETED,
    MODULE_COMPLETION_UPDATED,
    MODULE_VIEWED,
    TIME_FIELD,
    Where,
    log_row,
    other_json,
)
from common.moodle.demo.model import ADMIN_ID, DAY, Activity, Course, DemoSite, Enrolment, Person
from common.moodle.demo.quizzes import (
    COMPLETE,
    QUIZ_ATTEMPT_COLUMNS,
    QUIZ_GRADE_COLUMNS,
    QuizRecorder,
)
from common.moodle.demo.scorm_tracks import ScormLearning, ScormTracks
from common.moodle.tables import ScormLayout

COMPLETION_COLUMNS = (
    "id", "userid", "course", "timeenrolled", "timestarted", "timecompleted", "reaggregate",
)  # fmt: skip
MODULE_COMPLETION_COLUMNS = (
    "id", "coursemoduleid", "userid", "completionstate", "overrideby", "timemodified",
)  # fmt: skip
MODULE_VIEW_COLUMNS = ("id", "coursemoduleid", "userid", "timecreated")
GRADE_COLUMNS = (
    "id", "itemid", "userid", "rawgrade", "rawgrademax", "rawgrademin", "usermodified",
    "finalgrade", "timecreated", "timemodified", "aggregationstatus",
)  # fmt: skip


class Burst(NamedTuple):
    """Log events of one learning step; `anchored` ones get a login and course view first."""

    start: int
    user_id: int
    course: Course
    rows: list[tuple[Any, ...]]
    anchored: bool = True


@dataclass
class Progress:
    completions: list[tuple[Any, ...]] = field(default_factory=list)
    module_completions: list[tuple[Any, ...]] = field(default_factory=list)
    module_views: list[tuple[Any, ...]] = field(default_factory=list)
    grades: list[tuple[Any, ...]] = field(default_factory=list)
    bursts: dict[int, list[Burst]] = field(default_factory=lambda: defaultdict(list))
    completed_at: dict[int, int] = field(default_factory=dict)  # user_enrolments.id -> time
    course_grades: dict[tuple[int, int], float] = field(default_factory=dict)


class ProgressSimulator:
    def __init__(
        self, site: DemoSite, rng: random.Random, layout: ScormLayout, access: AccessTracker
    ) -> None:
        self.site, self.rng, self.access = site, rng, access
        self.progress = Progress()
        self.quizzes = QuizRecorder(rng)
        self.scorm_tracks = ScormTracks(layout)
        self.scorm = ScormLearning(rng, self.scorm_tracks)
        self._grade_ids = count(1)

    def run(self) -> Progress:
        learning: set[tuple[int, int]] = set()
        for enrolment in self.site.enrolments:
            if enrolment.role == "editingteacher":
                self._teacher_previews(enrolment)
                continue
            person = self.site.person(enrolment.user_id)
            # Progress belongs to the user and course, not to each of several enrolments.
            key = (person.id, enrolment.course.id)
            if enrolment.role == "student" and enrolment.status == 0 and key not in learning:
                learning.add(key)
                if person.can_log_in:
                    self._learn(person, enrolment)
        return self.progress

    def _teacher_previews(self, enrolment: Enrolment) -> None:
        for quiz in (a for a in enrolment.course.activities if a.modname == "quiz"):
            self.quizzes.preview(enrolment.user_id, quiz, enrolment.timestart + DAY)

    def _learn(self, person: Person, enrolment: Enrolment) -> None:
        rng, clock, course = self.rng, self.site.clock, enrolment.course
        delay = rng.uniform(0.05, 3.0) * (1.5 - person.engagement) * DAY
        first_access = enrolment.timestart + int(delay)
        horizon = min(clock.now, enrolment.timeend or clock.now)
        if first_access >= horizon:
            # Enrolled, never started: some sites still have a row (timestarted 0), some not.
            if rng.random() < 0.5:
                self._completion_row(enrolment, 0, None, 0)
            return
        tracked = [a for a in course.activities if a.tracked]
        work = rng.uniform(4, 20) * DAY / (0.3 + person.engagement)
        finishes = rng.random() < 0.25 + 0.6 * person.engagement
        # Those who will not finish stop somewhere along the way.
        reach = len(tracked) if finishes else rng.randint(0, len(tracked) - 1)
        course_grade, last_end, done = None, first_access, 0

        def next_start() -> int:
            planned = first_access + int(work * (done + rng.uniform(0.3, 1.0)) / len(tracked))
            return max(planned, last_end + 60)

        for activity in tracked[:reach]:
            outcome = self._complete_activity(
                person, course, activity, next_start(), horizon, must_pass=finishes
            )
            if outcome is None:  # the window closed first
                break
            last_end, grade = outcome
            done += 1
            if grade is not None:
                course_grade = (course_grade or 0.0) + grade
        if done == len(tracked):
            self._course_completed(person, enrolment, first_access, last_end)
        else:
            self._unfinished(person, course, tracked[done], next_start(), horizon)
            self._completion_row(enrolment, first_access, None, 0)
        self._course_grade(person, course, course_grade, last_end)

    def _complete_activity(
        self,
        person: Person,
        course: Course,
        activity: Activity,
        start: int,
        horizon: int,
        *,
        must_pass: bool,
    ) -> tuple[int, float | None] | None:
        where = Where.module(activity.context_id, activity.cm_id, course.id)
        grade: float | None = None
        if activity.modname == "quiz":
            quiz = self.quizzes.attempts(
                person, activity, where, start, horizon, must_pass=must_pass
            )
            if quiz is None:
                return None
            end, events, state, grade = quiz
        elif activity.modname == "scorm":
            scorm = self.scorm.attempts(person, activity, where, start, horizon)
            if scorm is None:
                return None
            end, events, grade = scorm
            state = COMPLETE
        else:
            # A page completes on view; a link is ticked off by hand a little later.
            end = start + (2 if activity.completionview else 40)
            if end >= horizon:
                return None
            kind = MODULE_VIEWED[activity.modname]
            events = [
                log_row(kind, start, person.id, where, objectid=activity.instance, ip=person.ip)
            ]
            state = COMPLETE
            if activity.completionview:
                self.progress.module_views.append(
                    (len(self.progress.module_views) + 1, activity.cm_id, person.id, start)
                )
        cmc_id = len(self.progress.module_completions) + 1
        self.progress.module_completions.append(
            (cmc_id, activity.cm_id, person.id, state, None, end)
        )
        other = {"relateduserid": person.id, "overrideby": None, "completionstate": state}
        events.append(
            log_row(MODULE_COMPLETION_UPDATED, end, person.id, where, objectid=cmc_id,
                    relateduserid=person.id, other=other_json(other), ip=person.ip)
        )  # fmt: skip
        if grade is not None:
            self._grade(activity.grade_item_id, person.id, grade, activity.grade, start, end)
        self._burst(person, course, events)
        return end, grade

    def _unfinished(
        self, person: Person, course: Course, activity: Activity, start: int, horizon: int
    ) -> None:
        if start >= horizon or self.rng.random() < 0.5:
            return
        where = Where.module(activity.context_id, activity.cm_id, course.id)
        if activity.modname == "quiz":
            self._burst(person, course, self.quizzes.unfinished(person, activity, where, start))
        elif activity.modname == "scorm" and start + 15 * 60 < horizon:
            self._burst(person, course, self.scorm.unfinished(person, activity, where, start))

    def _course_completed(
        self, person: Person, enrolment: Enrolment, started: int, last_end: int
    ) -> None:
        # The completion cron marks the course complete a little after the last activity.
        completed = last_end + self.rng.randint(5, 60) * 60
        if completed >= self.site.clock.now:
            self._completion_row(enrolment, started, None, last_end)
            return
        cc_id = self._completion_row(enrolment, started, completed, 0)
        self.progress.completed_at[enrolment.id] = completed
        course = enrolment.course
        row = log_row(
            COURSE_COMPLETED, completed, ADMIN_ID, Where.course(course.context_id, course.id),
            objectid=cc_id, relateduserid=person.id,
            other=other_json({"relateduserid": person.id}), origin="cli",
        )  # fmt: skip
        self._burst(person, course, [row], anchored=False)

    def _completion_row(
        self, enrolment: Enrolment, started: int, completed: int | None, reaggregate: int
    ) -> int:
        cc_id = len(self.progress.completions) + 1
        self.progress.completions.append(
            (cc_id, enrolment.user_id, enrolment.course.id, enrolment.timestart, started,
             completed, reaggregate)
        )  # fmt: skip
        return cc_id

    def _course_grade(self, person: Person, course: Course, total: float | None, when: int) -> None:
        if total is None:
            return
        grademax = sum(a.grade for a in course.activities if a.grade_item_id)
        self._grade(course.grade_item_id, person.id, total, grademax, when, when)
        self.progress.course_grades[(person.id, course.id)] = round(100 * total / grademax, 5)

    def _grade(
        self, item_id: int, user_id: int, grade: float, grademax: float, created: int, when: int
    ) -> None:
        self.progress.grades.append(
            (next(self._grade_ids), item_id, user_id, grade, grademax, 0.0, user_id, grade,
             created, when, "used")
        )  # fmt: skip

    def _burst(
        self, person: Person, course: Course, rows: list[tuple[Any, ...]], anchored: bool = True
    ) -> None:
        clock = self.site.clock
        in_window = [row for row in rows if clock.in_window(row[TIME_FIELD])]
        if len(in_window) < len(rows):
            # The part before the window is not logged, but it was an access all the same.
            first = min(row[TIME_FIELD] for row in rows)
            self.access.login(person.id, first - 120)
            self.access.visit(person.id, course.id, max(row[TIME_FIELD] for row in rows))
        if in_window:
            start = min(row[TIME_FIELD] for row in in_window)
            burst = Burst(start, person.id, course, in_window, anchored)
            self.progress.bursts[clock.day_index(start)].append(burst)


def write_progress(writer: BulkWriter, simulator: ProgressSimulator) -> None:
    progress = simulator.progress
    writer.insert("course_completions", COMPLETION_COLUMNS, progress.completions)
    writer.insert(
        "course_modules_completion", MODULE_COMPLETION_COLUMNS, progress.module_completions
    )
    writer.insert("course_modules_viewed", MODULE_VIEW_COLUMNS, progress.module_views)
    writer.insert("quiz_attempts", QUIZ_ATTEMPT_COLUMNS, simulator.quizzes.attempt_rows)
    writer.insert("quiz_grades", QUIZ_GRADE_COLUMNS, simulator.quizzes.grade_rows)
    writer.insert("grade_grades", GRADE_COLUMNS, progress.grades)
    simulator.scorm_tracks.write(writer)
