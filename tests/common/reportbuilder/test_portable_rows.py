"""The builder's compiled SQL gives the same rows on SQLite, MariaDB and PostgreSQL: one
document, the same seeded site on each configured database, compared value by value."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.common.reportbuilder.test_compile import completions, day, learners, run
from tests.conftest import MARIADB_URL, POSTGRES_URL, _empty_database
from tests.factories.sites import Site, build_site

BACKENDS = (
    ["sqlite"] + (["mariadb"] if MARIADB_URL else []) + (["postgres"] if POSTGRES_URL else [])
)

PER_COURSE = {
    "base": "course_completions",
    "joins": [{"relation": "course_completions.course=course.id"},
              {"relation": "course_completions.userid=user.id"}],
    "columns": [{"table": "course", "column": "fullname"},
                {"table": "course_completions", "column": "id", "aggregate": "count"},
                {"table": "course_completions", "column": "userid", "aggregate": "count_distinct"},
                {"table": "course_completions", "column": "timecompleted", "aggregate": "min"},
                {"table": "course_completions", "column": "timecompleted", "aggregate": "max"},
                {"table": "course_completions", "column": "reaggregate", "aggregate": "sum"},
                {"table": "user", "column": "id", "aggregate": "avg"}],
    "filters": [{"table": "course_completions", "column": "timecompleted", "op": "not_empty"}],
    "sort": [{"column": 1, "direction": "desc"}, {"column": 0, "direction": "asc"}],
}  # fmt: skip
COURSES_WITH_LEARNERS = {
    "base": "course",
    "joins": [{"relation": "course_completions.course=course.id", "keep_unmatched": True}],
    "columns": [{"table": "course", "column": "fullname"},
                {"table": "course_completions", "column": "id", "aggregate": "count"}],
    "sort": [{"column": 0, "direction": "desc"}],
}  # fmt: skip
DOCUMENTS = {
    "learners_sorted": {**learners(), "sort": [{"column": 0, "direction": "asc"}]},
    "contains_and_in": {
        **learners(
            {"column": "firstname", "op": "contains", "value": "a"},
            {"column": "firstname", "op": "in", "value": ["Ana", "Dan", "Zoe"]},
        ),
        "sort": [{"column": 0, "direction": "desc"}],
    },  # fmt: skip
    "completed_between": {
        **completions({"op": "date_between", "value": [day(60), day(2)]}),
        "sort": [{"column": 0, "direction": "asc"}],
    },
    "completed_recently": {
        **completions({"op": "in_last_days", "value": 36_500}),
        "sort": [{"column": 0, "direction": "asc"}],
    },
    "per_course_aggregates": PER_COURSE,
    "left_join_keeps_empty_courses": COURSES_WITH_LEARNERS,
}


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Site]]:
    if len(BACKENDS) < 2:
        pytest.skip("needs MariaDB or PostgreSQL besides SQLite to compare")
    built: dict[str, Site] = {}
    opened = []
    for backend in BACKENDS:
        scratch: Path = tmp_path_factory.mktemp(backend)
        databases = _empty_database(backend, scratch, "portable")
        built[backend] = build_site(next(databases))
        opened.append(databases)
    yield built
    for databases in opened:
        databases.close()  # drops the server databases


def _plain(value: Any) -> Any:
    """One value as all three databases can agree on it: numbers by value (MariaDB and
    PostgreSQL give AVG as a Decimal, SQLite as a float), text as text."""
    if isinstance(value, Decimal | float):
        return round(float(value), 4)
    return value


@pytest.mark.parametrize("document", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_the_compiled_report_gives_identical_rows_on_every_database(
    sites: dict[str, Site], document: dict[str, Any]
) -> None:
    rows = {
        backend: [tuple(_plain(v) for v in row) for row in run(site, document)]
        for backend, site in sites.items()
    }
    assert rows["sqlite"], "the document finds rows on the seeded site"
    for backend, found in rows.items():
        assert found == rows["sqlite"], backend
