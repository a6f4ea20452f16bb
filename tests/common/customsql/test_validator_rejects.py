"""Hostile SQL is refused, and the refusal says what and where."""

from __future__ import annotations

import pytest

from common.customsql.validator import MAX_SQL_BYTES, QueryRejected, validate
from common.errors import FieldError
from tests.common.customsql.corpus import Hostile, hostile_cases

HOSTILE = hostile_cases()


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(HOSTILE) >= 250
    assert len({case.id for case in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE, ids=[case.id for case in HOSTILE])
def test_hostile_input_is_rejected_naming_what_and_where(case: Hostile) -> None:
    with pytest.raises(QueryRejected) as caught:
        validate(case.sql)
    error = caught.value
    message = str(error)
    assert isinstance(error, FieldError) and error.field == "sql" and error.status == 422
    assert error.reason == message
    if case.expect:
        assert case.expect.lower() in message.lower()
    placed = error.line is not None and f"line {error.line}, column {error.column}:" in message
    named = bool(error.name) and error.name.lower() in message.lower()
    assert placed or named, message


def test_a_forbidden_table_is_placed_by_line_and_column() -> None:
    sql = "SELECT c.id,\n       c.fullname\n  FROM {course} c JOIN {config} x ON x.id = c.id"
    with pytest.raises(QueryRejected) as caught:
        validate(sql)
    assert str(caught.value) == "line 3, column 24: table `config` is not one a report may read"
    assert (caught.value.line, caught.value.column, caught.value.name) == (3, 24, "config")


def test_positions_hold_after_a_braced_table_on_the_same_line() -> None:
    with pytest.raises(QueryRejected) as caught:
        validate("SELECT id FROM {course} c WHERE SLEEP(2) = 0")
    assert (caught.value.line, caught.value.column, caught.value.name) == (1, 33, "SLEEP")


def test_a_second_statement_is_placed_at_its_semicolon() -> None:
    with pytest.raises(QueryRejected) as caught:
        validate("SELECT id\nFROM {course};\nDROP TABLE mdl_user")
    assert (caught.value.line, caught.value.column) == (2, 14)
    assert "only one statement" in str(caught.value)


def test_star_over_a_credential_table_names_the_columns() -> None:
    with pytest.raises(QueryRejected) as caught:
        validate("SELECT * FROM {user}")
    message = str(caught.value)
    assert "password" in message and "secret" in message and "list the columns" in message


def test_over_long_input_is_refused_before_parsing() -> None:
    sql = "SELECT id FROM {course} WHERE id IN (" + ", ".join(["1"] * 40_000) + ")"
    assert len(sql) > MAX_SQL_BYTES
    with pytest.raises(QueryRejected, match="longer than 100 kB"):
        validate(sql)


def test_the_length_cap_counts_bytes_not_characters() -> None:
    padding = "é" * (MAX_SQL_BYTES // 2)  # two bytes each in UTF-8
    with pytest.raises(QueryRejected, match="longer than"):
        validate(f"SELECT id FROM {{course}} WHERE fullname = '{padding}'")
    assert validate(f"SELECT id FROM {{course}} WHERE fullname = '{padding[:1000]}'")


def test_deep_nesting_is_refused_not_crashed() -> None:
    sql = "SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM {course}"
    with pytest.raises(QueryRejected, match="nested too deeply|not SQL"):
        validate(sql)


def test_a_question_mark_placeholder_asks_for_a_name() -> None:
    with pytest.raises(QueryRejected, match="name them, e.g. `:courseid`"):
        validate("SELECT id FROM {course} WHERE id = ?")


def test_tables_follow_the_configured_prefix() -> None:
    assert validate("SELECT id FROM moodle_course", prefix="moodle_").tables == {"course"}
    with pytest.raises(QueryRejected, match="not a Moodle table name"):
        validate("SELECT id FROM mdl_course", prefix="moodle_")
    with pytest.raises(QueryRejected, match="table `config`"):
        validate("SELECT id FROM config", prefix="")


def test_non_text_input_is_refused() -> None:
    with pytest.raises(QueryRejected, match="text"):
        validate(b"SELECT 1")  # type: ignore[arg-type]
