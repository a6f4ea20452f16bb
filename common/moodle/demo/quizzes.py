"""Quiz attempts of the demo site's learners and teachers, with the events they log.

A learner makes one to three attempts and improves a little each time; the quiz grade is the
best attempt (grademethod 1) scaled by quiz.grade / quiz.sumgrades. Learners who are on a quiz
when the window closes leave an `inprogress` or `abandoned` attempt with no sumgrades, and the
editing teacher leaves a preview attempt (preview=1) that reports must skip.
"""

from __future__ import annotations

import random
from itertools import count
from typing import Any, NamedTuple

from common.moodle.demo.events import (
    MODULE_VIEWED,
    QUIZ_ATTEMPT_STARTED,
    QUIZ_ATTEMPT_SUBMITTED,
    Where,
    log_row,
    other_json,
)
from common.moodle.demo.model import Activity, Person

QUIZ_ATTEMPT_COLUMNS = (
    "id", "quiz", "userid", "attempt", "uniqueid", "layout", "currentpage", "preview", "state",
    "timestart", "timefinish", "timemodified", "timemodifiedoffline", "sumgrades",
)  # fmt: skip
QUIZ_GRADE_COLUMNS = ("id", "quiz", "userid", "grade", "timemodified")

# course_modules_completion.completionstate
COMPLETE, COMPLETE_PASS, COMPLETE_FAIL = 1, 2, 3


class QuizResult(NamedTuple):
    end: int
    events: list[tuple[Any, ...]]
    completionstate: int
    grade: float


class QuizRecorder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.attempt_rows: list[tuple[Any, ...]] = []
        self.grade_rows: list[tuple[Any, ...]] = []
        self._attempt_ids = count(1)

    def attempts(
        self,
        person: Person,
        quiz: Activity,
        where: Where,
        start: int,
        horizon: int,
        *,
        must_pass: bool,
    ) -> QuizResult | None:
        """Finished attempts from `start`; None when the last one would end after `horizon`."""
        rng = self.rng
        sittings = []
        for _ in range(1 + (rng.random() < 0.35) + (rng.random() < 0.1)):
            finish = start + rng.randint(4, 25) * 60
            sittings.append((start, finish))
            start = finish + rng.randint(10, 90) * 60
        end = sittings[-1][1] + 2
        if end >= horizon:
            return None
        events = [self._viewed(person, quiz, where, sittings[0][0] - 30)]
        best = 0.0
        for number, (began, finish) in enumerate(sittings, start=1):
            share = min(1.0, max(0.05, rng.gauss(0.45 + 0.45 * person.engagement, 0.15)))
            share = min(1.0, share + 0.08 * (number - 1))
            if must_pass and number == len(sittings):
                share = max(share, 0.65)
            attempt_id = self._attempt(person.id, quiz, number, "finished", began, finish, share)
            best = max(best, round(share * quiz.grade, 5))
            events += self._attempt_events(person, quiz, where, attempt_id, began, finish)
        self.grade_rows.append((len(self.grade_rows) + 1, quiz.instance, person.id, best, end))
        state = COMPLETE
        if quiz.completionpassgrade:
            state = COMPLETE_PASS if best >= quiz.gradepass else COMPLETE_FAIL
        return QuizResult(end, events, state, best)

    def unfinished(
        self, person: Person, quiz: Activity, where: Where, start: int
    ) -> list[tuple[Any, ...]]:
        """An attempt still open (or given up) when the window closes."""
        state = "abandoned" if self.rng.random() < 0.2 else "inprogress"
        attempt_id = self._attempt(person.id, quiz, 1, state, start, 0, None)
        return [
            self._viewed(person, quiz, where, start - 30),
            *self._attempt_events(person, quiz, where, attempt_id, start, None),
        ]

    def preview(self, teacher_id: int, quiz: Activity, when: int) -> None:
        self._attempt(teacher_id, quiz, 1, "finished", when, when + 300, 1.0, preview=1)

    def _attempt(
        self,
        user_id: int,
        quiz: Activity,
        number: int,
        state: str,
        began: int,
        finish: int,
        share: float | None,
        *,
        preview: int = 0,
    ) -> int:
        attempt_id = next(self._attempt_ids)
        questions = int(quiz.sumgrades)
        # One question per page: slot numbers with a 0 page break after each.
        layout = ",".join(f"{slot},0" for slot in range(1, questions + 1))
        sumgrades = None if share is None else round(share * quiz.sumgrades, 5)
        self.attempt_rows.append(
            (
                attempt_id,
                quiz.instance,
                user_id,
                number,
                attempt_id,
                layout,
                questions - 1 if finish else questions // 2,
                preview,
                state,
                began,
                finish,
                finish or began,
                0,
                sumgrades,
            )  # fmt: skip
        )
        return attempt_id

    def _viewed(self, person: Person, quiz: Activity, where: Where, when: int) -> tuple[Any, ...]:
        return log_row(
            MODULE_VIEWED["quiz"], when, person.id, where, objectid=quiz.instance, ip=person.ip
        )

    def _attempt_events(
        self,
        person: Person,
        quiz: Activity,
        where: Where,
        attempt_id: int,
        began: int,
        finish: int | None,
    ) -> list[tuple[Any, ...]]:
        started = other_json({"quizid": quiz.instance})
        events = [
            log_row(QUIZ_ATTEMPT_STARTED, began, person.id, where, objectid=attempt_id,
                    relateduserid=person.id, other=started, ip=person.ip)
        ]  # fmt: skip
        if finish:
            submitted = other_json({"submitterid": person.id, "quizid": quiz.instance})
            events.append(
                log_row(QUIZ_ATTEMPT_SUBMITTED, finish, person.id, where, objectid=attempt_id,
                        relateduserid=person.id, other=submitted, ip=person.ip)
            )  # fmt: skip
        return events
