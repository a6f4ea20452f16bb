"""Course categories and courses of the demo site.

With IOMAD every company gets its own category and some courses of its own; the rest are shared
with every company (iomad_courses.shared=1) or only with a few (shared=2), as IOMAD sites do.
Without IOMAD the courses sit in a handful of subject categories.
"""

from __future__ import annotations

import random
from collections import Counter

from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.contexts import COURSE, COURSECAT, SYSTEM_CONTEXT_ID, ContextTree
from common.moodle.demo.model import DAY, Course, DemoSite
from common.moodle.demo.vocabulary import COURSE_LEVELS, COURSE_TOPICS, SUBJECT_CATEGORIES

CATEGORY_COLUMNS = (
    "id", "name", "idnumber", "description", "descriptionformat", "parent", "sortorder",
    "coursecount", "visible", "visibleold", "timemodified", "depth", "path",
)  # fmt: skip
COURSE_COLUMNS = (
    "id", "category", "sortorder", "fullname", "shortname", "idnumber", "summary",
    "summaryformat", "format", "showgrades", "newsitems", "startdate", "enddate", "visible",
    "visibleold", "timecreated", "timemodified", "enablecompletion", "cacherev",
    "showcompletionconditions",
)  # fmt: skip

# Out of every five courses: three belong to one company, one is open to all, one is shared
# with a few companies only.
_OWNED, _OPEN, _CLOSED = (0, 1, 2), 3, 4


class Categories:
    """course_categories rows; their `path` chains category ids (`/3/7`), not context ids."""

    def __init__(self, contexts: ContextTree, created_at: int) -> None:
        self._contexts = contexts
        self._created_at = created_at
        self._categories: dict[int, tuple[str, int, str]] = {}  # id -> (name, parent, path)
        self._course_counts: Counter[int] = Counter()
        self.context_ids: dict[int, int] = {}
        # A fresh install's default category.
        self.add("Category 1")

    def add(self, name: str, parent: int = 0) -> int:
        category_id = len(self._categories) + 1
        path = f"{self._categories[parent][2] if parent else ''}/{category_id}"
        parent_context = self.context_ids[parent] if parent else SYSTEM_CONTEXT_ID
        self.context_ids[category_id] = self._contexts.add(COURSECAT, category_id, parent_context)
        self._categories[category_id] = (name, parent, path)
        return category_id

    def count_course(self, category_id: int) -> None:
        self._course_counts[category_id] += 1

    def write(self, writer: BulkWriter) -> None:
        writer.insert(
            "course_categories",
            CATEGORY_COLUMNS,
            (
                (category_id, name, None, None, 1, parent, category_id * 10_000,
                 self._course_counts[category_id], 1, 1, self._created_at, path.count("/"), path)
                for category_id, (name, parent, path) in self._categories.items()
            ),
        )  # fmt: skip


def plan_courses(
    site: DemoSite,
    rng: random.Random,
    *,
    courses: int,
    categories: Categories,
    contexts: ContextTree,
) -> None:
    if site.iomad:
        shared_category = categories.add("Shared courses")
    else:
        subject_ids = [categories.add(name) for name in SUBJECT_CATEGORIES]
        subject_ids.append(categories.add("Security", parent=subject_ids[2]))
    for index in range(courses):
        course_id = index + 2  # id 1 is the site course
        if site.iomad:
            kind = index % 5
            # Owned courses go round the companies in turn.
            owner = site.companies[(index // 5 * 3 + kind) % len(site.companies)]
            category_id = owner.category_id if kind in _OWNED else shared_category
        else:
            kind, category_id = 0, subject_ids[index % len(subject_ids)]
        topic = COURSE_TOPICS[index % len(COURSE_TOPICS)]
        level = COURSE_LEVELS[index // len(COURSE_TOPICS) % len(COURSE_LEVELS)]
        start = (site.clock.start - rng.randint(30, 300) * DAY) // DAY * DAY
        course = Course(
            id=course_id,
            shortname="".join(word[0] for word in topic.split()).upper() + f"{course_id:03d}",
            fullname=f"{topic} {level}",
            category_id=category_id,
            context_id=contexts.add(COURSE, course_id, categories.context_ids[category_id]),
            startdate=start,
            timecreated=start - 14 * DAY,
            visible=0 if index % 19 == 18 else 1,
            self_enrol_open=rng.random() < 0.5,
        )
        categories.count_course(category_id)
        if site.iomad:
            _place_in_companies(site, rng, course, kind, owner.id)
        site.courses.append(course)


def _place_in_companies(
    site: DemoSite, rng: random.Random, course: Course, kind: int, owner_id: int
) -> None:
    if kind in _OWNED:
        course.company_id = owner_id
        # Licensed courses are owned ones; the second course of a site is always licensed
        # so that every demo site has license data.
        course.licensed = int(course.id == 3 or rng.random() < 0.2)
    elif kind == _OPEN:
        course.shared = 1
    else:
        course.shared = 2
        howmany = min(len(site.companies), rng.randint(2, 4))
        course.shared_with = sorted(c.id for c in rng.sample(site.companies, howmany))
    # A company's course set: its own, the open ones, the closed ones shared with it (§8).
    for company in site.companies:
        if company.id in (course.company_id, *course.shared_with) or course.shared == 1:
            company.course_ids.append(course.id)


def write_courses(writer: BulkWriter, site: DemoSite) -> None:
    writer.insert(
        "course",
        COURSE_COLUMNS,
        (
            (
                c.id,
                c.category_id,
                c.category_id * 10_000 + c.id,
                c.fullname,
                c.shortname,
                "",
                f"<p>{c.fullname}: a demo course.</p>",
                1,
                "topics",
                1,
                5,
                c.startdate,
                c.startdate + 365 * DAY,
                c.visible,
                c.visible,
                c.timecreated,
                c.timecreated,
                1,
                c.timecreated,
                1,
            )  # fmt: skip
            for c in site.courses
        ),
    )
