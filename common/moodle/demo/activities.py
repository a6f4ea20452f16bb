"""Course content of the demo site: sections, course modules, quizzes, SCORM packages and their
SCOs, and the grade items behind them.

Every course opens with its Announcements forum in section 0, then pages, links, one or two
quizzes and usually a SCORM package spread over the topic sections. Tracked activities have
completion on, so course completion is earned activity by activity.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import count
from typing import Any

from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.contexts import MODULE, ContextTree
from common.moodle.demo.model import Activity, Course, DemoSite
from common.moodle.demo.site import module_ids

SECTION_COLUMNS = (
    "id", "course", "section", "name", "summary", "summaryformat", "sequence", "visible",
    "timemodified",
)  # fmt: skip
CM_COLUMNS = (
    "id", "course", "module", "instance", "section", "idnumber", "added", "visible",
    "visibleoncoursepage", "visibleold", "completion", "completiongradeitemnumber",
    "completionview", "completionpassgrade", "deletioninprogress",
)  # fmt: skip
QUIZ_COLUMNS = (
    "id", "course", "name", "intro", "introformat", "timelimit", "overduehandling",
    "preferredbehaviour", "attempts", "grademethod", "questionsperpage", "navmethod",
    "sumgrades", "grade", "timecreated", "timemodified", "browsersecurity",
)  # fmt: skip
SCORM_COLUMNS = (
    "id", "course", "name", "scormtype", "reference", "intro", "introformat", "version",
    "maxgrade", "grademethod", "maxattempt", "md5hash", "revision", "launch", "timemodified",
    "completionstatusrequired",
)  # fmt: skip
SCOES_COLUMNS = (
    "id", "scorm", "manifest", "organization", "parent", "identifier", "launch", "scormtype",
    "title", "sortorder",
)  # fmt: skip
GRADE_ITEM_COLUMNS = (
    "id", "courseid", "itemname", "itemtype", "itemmodule", "iteminstance", "itemnumber",
    "gradetype", "grademax", "grademin", "gradepass", "sortorder", "timecreated",
    "timemodified",
)  # fmt: skip

SCORM_12, SCORM_2004 = "SCORM_1.2", "SCORM_1.3"


class _Counters:
    def __init__(self) -> None:
        self.cm = count(1)
        self.section = count(1)
        self.sco = count(1)
        self.grade_item = count(1)
        self.instances = {name: count(1) for name in ("forum", "page", "url", "quiz", "scorm")}


def plan_activities(site: DemoSite, rng: random.Random, contexts: ContextTree) -> None:
    counters = _Counters()
    for index, course in enumerate(site.courses):
        course.grade_item_id = next(counters.grade_item)
        topic_sections = rng.randint(3, 5)
        course.sections = [(next(counters.section), number) for number in range(topic_sections + 1)]
        kinds = ["page"] * rng.randint(2, 3) + ["url"] * rng.randint(0, 1)
        kinds += ["quiz"] * rng.randint(1, 2)
        if index == 0 or rng.random() < 0.8:
            kinds.append("scorm")
        rng.shuffle(kinds)
        _add(course, counters, contexts, "forum", 0, "Announcements", rng)
        for position, modname in enumerate(kinds):
            section = 1 + position % topic_sections
            name = f"{modname.capitalize()} {position + 1}: {course.fullname}"
            _add(course, counters, contexts, modname, section, name, rng)
        # Some courses hold a module caught mid-deletion; readers must skip it.
        if index % 10 == 3:
            doomed = _add(course, counters, contexts, "page", 1, "Old handout", rng)
            doomed.deletioninprogress = 1


def _add(
    course: Course,
    counters: _Counters,
    contexts: ContextTree,
    modname: str,
    section: int,
    name: str,
    rng: random.Random,
) -> Activity:
    cm_id = next(counters.cm)
    activity = Activity(
        cm_id=cm_id,
        course_id=course.id,
        modname=modname,
        module_id=module_ids()[modname],
        instance=next(counters.instances[modname]),
        section_id=course.sections[section][0],
        context_id=contexts.add(MODULE, cm_id, course.context_id),
        name=name[:255],
        completion={"forum": 0, "url": 1}.get(modname, 2),
        completionview=int(modname == "page"),
    )
    if modname == "quiz":
        activity.grade = rng.choice((10.0, 100.0))
        activity.sumgrades = float(rng.choice((5, 10, 20)))
        activity.gradepass = round(activity.grade * 0.6, 5)
        activity.completionpassgrade = int(rng.random() < 0.5)
    elif modname == "scorm":
        activity.grade = 100.0
        activity.scorm_version = rng.choice((SCORM_12, SCORM_2004))
        next(counters.sco)  # the package's organization row comes before its SCOs
        activity.sco_ids = [next(counters.sco) for _ in range(rng.randint(1, 2))]
    if modname in ("quiz", "scorm"):
        activity.grade_item_id = next(counters.grade_item)
    course.activities.append(activity)
    return activity


def write_activities(writer: BulkWriter, site: DemoSite) -> None:
    activities = [a for course in site.courses for a in course.activities]
    writer.insert("course_sections", SECTION_COLUMNS, _section_rows(site))
    writer.insert(
        "course_modules",
        CM_COLUMNS,
        (
            (
                a.cm_id,
                a.course_id,
                a.module_id,
                a.instance,
                a.section_id,
                None,
                site.course_by_id(a.course_id).timecreated,
                1,
                1,
                1,
                a.completion,
                0 if a.modname == "quiz" and a.completion == 2 else None,
                a.completionview,
                a.completionpassgrade,
                a.deletioninprogress,
            )  # fmt: skip
            for a in activities
        ),
    )
    quizzes = [a for a in activities if a.modname == "quiz"]
    writer.insert("quiz", QUIZ_COLUMNS, (_quiz_row(site, a) for a in quizzes))
    scorms = [a for a in activities if a.modname == "scorm"]
    writer.insert("scorm", SCORM_COLUMNS, (_scorm_row(site, a) for a in scorms))
    writer.insert("scorm_scoes", SCOES_COLUMNS, (row for a in scorms for row in _scoes_rows(a)))
    writer.insert("grade_items", GRADE_ITEM_COLUMNS, _grade_item_rows(site))


def _section_rows(site: DemoSite) -> Iterator[tuple[Any, ...]]:
    for course in site.courses:
        for section_id, number in course.sections:
            sequence = ",".join(
                str(a.cm_id) for a in course.activities if a.section_id == section_id
            )
            name = None if number == 0 else f"Topic {number}"
            yield (section_id, course.id, number, name, "", 1, sequence, 1, course.timecreated)


def _quiz_row(site: DemoSite, quiz: Activity) -> tuple[Any, ...]:
    created = site.course_by_id(quiz.course_id).timecreated
    return (
        quiz.instance, quiz.course_id, quiz.name, "", 1, 1800 if quiz.instance % 3 == 0 else 0,
        "autosubmit", "deferredfeedback", 0 if quiz.instance % 2 else 3, 1, 1, "free",
        quiz.sumgrades, quiz.grade, created, created, "-",
    )  # fmt: skip


def _scorm_row(site: DemoSite, scorm: Activity) -> tuple[Any, ...]:
    created = site.course_by_id(scorm.course_id).timecreated
    # completionstatusrequired is a bitmask: 4 = "completed" (2 would be "passed").
    return (
        scorm.instance, scorm.course_id, scorm.name, "local", f"package{scorm.instance}.zip", "",
        1, scorm.scorm_version, scorm.grade, 1, 0, "", 1, scorm.sco_ids[0], created, 4,
    )  # fmt: skip


def _scoes_rows(scorm: Activity) -> Iterator[tuple[Any, ...]]:
    manifest, organization = f"MANIFEST-{scorm.instance}", f"ORG-{scorm.instance}"
    yield (
        scorm.sco_ids[0] - 1, scorm.instance, manifest, "", "/", organization, "", "",
        scorm.name, 1,
    )  # fmt: skip
    for position, sco_id in enumerate(scorm.sco_ids, start=1):
        yield (
            sco_id, scorm.instance, manifest, organization, organization, f"SCO-{position}",
            f"sco{position}/index.html", "sco", f"Lesson {position}", position + 1,
        )  # fmt: skip


def _grade_item_rows(site: DemoSite) -> Iterator[tuple[Any, ...]]:
    for course in site.courses:
        graded = [a for a in course.activities if a.grade_item_id]
        # The course total. Its iteminstance points at the course's grade category in Moodle;
        # grade_categories is not in the schema, so the course id stands in for it.
        yield (
            course.grade_item_id, course.id, None, "course", None, course.id, None, 1,
            sum(a.grade for a in graded), 0.0, 0.0, 1, course.timecreated, course.timecreated,
        )  # fmt: skip
        for sortorder, a in enumerate(graded, start=2):
            yield (
                a.grade_item_id, course.id, a.name, "mod", a.modname, a.instance, 0, 1, a.grade,
                0.0, a.gradepass, sortorder, course.timecreated, course.timecreated,
            )  # fmt: skip
