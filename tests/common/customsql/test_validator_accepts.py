"""Legitimate reporting SQL is accepted, printed for each database, and runs on the demo site."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlglot
from sqlalchemy import Engine, text
from sqlglot import exp

from common.customsql.validator import CheckedQuery, QueryRejected, validate
from common.customsql.whitelist import (
    ALLOWED_FUNCTIONS,
    CREDENTIAL_COLUMNS,
    FUNCTION_EXAMPLES,
    REPORT_TABLES,
)
from common.db import make_engine
from common.moodle.demo import seed_site
from common.moodle.tables import moodle_metadata
from tests.common.customsql.corpus import Legit, legit_cases
from tests.conftest import ALL_DATABASES, _empty_database

LEGIT = legit_cases()
NOW = 1_767_225_600


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(LEGIT) >= 60
    assert len({case.id for case in LEGIT}) == len(LEGIT)


@pytest.mark.parametrize("case", LEGIT, ids=[case.id for case in LEGIT])
def test_legitimate_query_is_accepted(case: Legit) -> None:
    checked = validate(case.sql)
    for dialect in ("mysql", "sqlite", "postgres"):
        printed = checked.sql_for(dialect)
        assert not printed.rstrip().endswith(";")
        reread = sqlglot.parse_one(printed.replace("\\:", ":"), read=dialect)
        assert not any(node.comments for node in reread.walk()), printed
        assert not list(reread.find_all(exp.Hint))
    # what the database runs passes the validator again, as written with the prefix
    again = validate(checked.sql_for("mysql").replace("\\:", ":"))
    assert again.tables == checked.tables and again.params == checked.params


# The corpus is MySQL as MariaDB/MySQL and SQLite-demo authors write it; a PostgreSQL site's
# authors write PostgreSQL (tests/common/customsql/test_validator_postgres.py runs those).
MYSQL_WRITTEN = [p for p in ALL_DATABASES if getattr(p, "values", [p])[0] != "postgres"]


@pytest.fixture(scope="module", params=MYSQL_WRITTEN)
def demo_moodle(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Engine]]:
    """A small seeded demo Moodle/IOMAD site, on SQLite and (when configured) on MariaDB."""
    scratch: Path = tmp_path_factory.mktemp("customsql")
    for url in _empty_database(request.param, scratch, "customsql"):
        seed_site(url, users=60, courses=4, companies=2, days=20, seed=3, now=NOW)
        engine = make_engine(url)
        try:
            yield request.param, engine
        finally:
            engine.dispose()


@pytest.mark.parametrize("case", LEGIT, ids=[case.id for case in LEGIT])
def test_accepted_query_runs_on_the_demo_site(case: Legit, demo_moodle: tuple[str, Engine]) -> None:
    backend, engine = demo_moodle
    if backend not in case.runs_on:
        pytest.skip(f"{case.id} uses MySQL-only functions or syntax")
    checked = validate(case.sql)
    dialect = "sqlite" if backend == "sqlite" else "mysql"
    with engine.connect() as connection:
        result = connection.execute(
            text(checked.sql_for(dialect)), dict.fromkeys(checked.params, 2)
        )
        assert result.keys()
        result.fetchall()


def test_the_demo_queries_return_what_the_site_holds(demo_moodle: tuple[str, Engine]) -> None:
    backend, engine = demo_moodle
    dialect = "sqlite" if backend == "sqlite" else "mysql"
    checked = validate(
        "SELECT COUNT(*) FROM {user} u WHERE u.deleted = 0 AND u.email <> 'it''s :not a param'"
        " AND u.id <> :skip"
    )
    with engine.connect() as connection:
        direct = connection.execute(
            text("SELECT COUNT(*) FROM mdl_user WHERE deleted = 0 AND id <> 1")
        )
        counted = connection.execute(text(checked.sql_for(dialect)), {"skip": 1})
        assert counted.scalar() == direct.scalar() > 0


def test_checked_query_carries_source_params_and_tables() -> None:
    sql = "SELECT c.id FROM {course} c JOIN mdl_enrol e ON e.courseid = c.id\n"
    sql += "WHERE c.id = :courseid AND e.timecreated > :since OR c.category = :courseid;"
    checked = validate(sql)
    assert isinstance(checked, CheckedQuery)
    assert checked.source == sql
    assert checked.params == ("courseid", "since")
    assert checked.tables == {"course", "enrol"}
    assert checked.sql_for("mysql") == (
        "SELECT c.id FROM mdl_course AS c JOIN mdl_enrol AS e ON e.courseid = c.id "
        "WHERE c.id = :courseid AND e.timecreated > :since OR c.category = :courseid"
    )


def test_the_prefix_applies_to_braced_and_prefix_tables() -> None:
    checked = validate("SELECT {user}.id FROM {user} JOIN prefix_course c ON c.id = 1", "moodle_")
    assert checked.sql_for("mysql") == (
        "SELECT moodle_user.id FROM moodle_user JOIN moodle_course AS c ON c.id = 1"
    )


def test_hints_and_comments_are_dropped() -> None:
    checked = validate("SELECT /*+ BKA(c) */ c.id -- the id\nFROM {course} c /* all */")
    assert checked.sql_for("mysql") == "SELECT c.id FROM mdl_course AS c"


def test_a_leading_colon_inside_quotes_is_escaped_for_text() -> None:
    checked = validate("SELECT ':x' AS a, id AS `b :y` FROM {course} WHERE id = :id")
    assert checked.params == ("id",)
    printed = checked.sql_for("mysql")
    assert "'\\:x'" in printed and "`b \\:y`" in printed
    assert text(printed).compile().params == {"id": None}


def test_an_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="oracle"):
        validate("SELECT id FROM {course}").sql_for("oracle")


def test_validation_is_cached_per_text_and_prefix() -> None:
    sql = "SELECT id FROM {course}"
    assert validate(sql) is validate(sql)
    assert validate(sql, "x_") is not validate(sql)
    assert validate(sql, "x_").sql_for("mysql") == "SELECT id FROM x_course"


def test_whitelist_tables_exist_in_the_schema_and_leave_secrets_out() -> None:
    schema = moodle_metadata("mdl_").tables
    known = {name.removeprefix("mdl_") for name in schema}
    assert REPORT_TABLES <= known
    for private in ("config", "config_plugins", "external_tokens", "sessions", "email"):
        assert private not in REPORT_TABLES
    assert not any(name.startswith("manireports") for name in REPORT_TABLES)
    for table, columns in CREDENTIAL_COLUMNS.items():
        assert table in REPORT_TABLES
        assert columns <= {column.name for column in schema[f"mdl_{table}"].columns}


def test_every_allowed_function_example_is_accepted() -> None:
    assert set(FUNCTION_EXAMPLES) == ALLOWED_FUNCTIONS
    for name, example in FUNCTION_EXAMPLES.items():
        assert validate(f"SELECT {example} AS v FROM {{course}} x"), name


def test_a_function_outside_the_list_is_refused_even_when_sqlglot_knows_it() -> None:
    for call in ("DATABASE()", "USER()", "VERSION()", "UUID()", "CONNECTION_ID()"):
        with pytest.raises(QueryRejected, match="not one a report may call"):
            validate(f"SELECT {call} FROM {{course}}")
