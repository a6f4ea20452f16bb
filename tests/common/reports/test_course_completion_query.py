"""The completion report's buckets query binds only its named parameters: its constants are
written into the SQL, so a plan PostgreSQL makes once for any values (a prepared statement's
generic plan) still knows them. Its figures on every database: test_across_databases.py."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite

from common.reports.course_completion import _buckets_query

DIALECTS = [postgresql.psycopg.dialect(), mysql.pymysql.dialect(), sqlite.dialect()]


@pytest.mark.parametrize("dialect", DIALECTS, ids=["postgresql", "mariadb", "sqlite"])
@pytest.mark.parametrize(
    ("by_course", "by_cohort", "named"),
    [
        (False, False, {"now", "since", "tz_offset_s"}),
        (True, True, {"now", "since", "tz_offset_s", "course", "cohort"}),
    ],
)
def test_only_the_named_parameters_are_bound(
    dialect: object, by_course: bool, by_cohort: bool, named: set[str]
) -> None:
    compiled = _buckets_query("mdl_", by_course, by_cohort).compile(dialect=dialect)
    bound = {bind.key for bind in compiled.binds.values() if not bind.literal_execute}
    assert bound == named
    written_out = {bind.value for bind in compiled.binds.values() if bind.literal_execute}
    assert {50, "student"} <= written_out  # the course context level, the learner archetype
