"""The builder document: what is accepted, and a clear error naming what is not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.errors import FieldError
from common.reportbuilder.document import (
    MAX_COLUMNS,
    MAX_DOCUMENT_CHARS,
    MAX_FILTERS,
    MAX_JOINS,
    MAX_LIST_VALUES,
    MAX_VALUE_CHARS,
    parse_document,
)
from common.reportbuilder.schema import builder_schema


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "base": "user",
        "joins": [{"relation": "course_completions.userid=user.id"}],
        "columns": [{"table": "user", "column": "lastname"},
                    {"table": "course_completions", "column": "timecompleted"}],
        "filters": [], "sort": [], "limit": 100,
    }  # fmt: skip
    base.update(changes)
    return base


def rejected(document: Any) -> FieldError:
    with pytest.raises(FieldError) as caught:
        parse_document(document, builder_schema())
    return caught.value


def test_a_document_round_trips_through_its_canonical_json():
    parsed = parse_document(doc(), builder_schema())
    assert parsed.tables == ("user", "course_completions")
    again = parse_document(json.dumps(parsed.as_json()), builder_schema())
    assert again == parsed


@pytest.mark.parametrize(
    ("change", "field", "named"),
    [
        ({"base": "config"}, "base", "'config'"),
        ({"base": "manireports_custom_reports"}, "base", "manireports_custom_reports"),
        ({"base": "sessions"}, "base", "'sessions'"),
        ({"joins": [{"relation": "user.id=config.id"}]}, "joins[0]", "user.id=config.id"),
        ({"columns": [{"table": "user", "column": "password"}]}, "columns[0]", "'password'"),
        ({"columns": [{"table": "user", "column": "secret"}]}, "columns[0]", "'secret'"),
        ({"columns": [{"table": "course", "column": "id"}]}, "columns[0]", "'course'"),
        ({"columns": [{"table": "user", "column": "id", "aggregate": "median"}]},
         "columns[0]", "'median'"),
        ({"columns": [{"table": "user", "column": "email", "aggregate": "sum"}]},
         "columns[0]", "sum does not apply to text"),
        ({"filters": [{"table": "user", "column": "email", "op": "like", "value": "x"}]},
         "filters[0]", "'like'"),
        ({"filters": [{"table": "user", "column": "email", "op": "lt", "value": "x"}]},
         "filters[0]", "operator lt does not apply to text"),
        ({"filters": [{"table": "user", "column": "password", "op": "eq", "value": "x"}]},
         "filters[0]", "'password'"),
        ({"filters": [{"table": "user", "column": "id", "op": "eq", "value": "1 OR 1=1"}]},
         "filters[0].value", "not a whole number"),
        ({"filters": [{"table": "user", "column": "lastaccess", "op": "before",
                       "value": "2024-01-01' OR '1"}]}, "filters[0].value", "not a date"),
        ({"filters": [{"table": "user", "column": "email", "op": "eq", "value": {"x": 1}}]},
         "filters[0].value", "expected a value"),
        ({"filters": [{"table": "user", "column": "email", "op": "eq", "value": ""}]},
         "filters[0].value", "a value is needed"),
        ({"filters": [{"table": "user", "column": "deleted", "op": "is_true", "value": "1"}]},
         "filters[0]", "takes no value"),
        ({"sort": [{"column": 5}]}, "sort[0]", "not one of the report's columns"),
        ({"sort": [{"column": 0, "direction": "sideways"}]}, "sort[0]", "sideways"),
        ({"limit": 0}, "limit", "from 1 to"),
        ({"limit": "100; DROP TABLE x"}, "limit", "from 1 to"),
        ({"columns": []}, "columns", "at least one column"),
        ({"extra": 1}, "builder", "'extra'"),
        ({"version": 9}, "version", "9"),
    ],
)  # fmt: skip
def test_unknown_or_wrong_parts_are_named(change, field, named):  # type: ignore[no-untyped-def]
    error = rejected(doc(**change))
    assert error.field == field
    assert named in error.reason


def test_a_join_must_add_one_new_table_to_one_already_chosen():
    error = rejected(doc(joins=[{"relation": "course_completions.course=course.id"}]))
    assert error.field == "joins[0]" and "neither" in error.reason
    twice = [{"relation": "course_completions.userid=user.id"}] * 2
    assert "both" in rejected(doc(joins=twice)).reason


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"columns": [{"table": "user", "column": "id"}] * (MAX_COLUMNS + 1)}, "columns"),
        ({"joins": [{"relation": "x"}] * (MAX_JOINS + 1)}, "joins"),
        ({"filters": [{"table": "user", "column": "id", "op": "is_empty"}] * (MAX_FILTERS + 1)},
         "filters"),
        ({"filters": [{"table": "user", "column": "id", "op": "in",
                       "value": list(range(MAX_LIST_VALUES + 1))}]}, "filters[0]"),
        ({"filters": [{"table": "user", "column": "email", "op": "eq",
                       "value": "x" * (MAX_VALUE_CHARS + 1)}]}, "filters[0].value"),
    ],
)  # fmt: skip
def test_sizes_are_bounded(change, field):  # type: ignore[no-untyped-def]
    assert rejected(doc(**change)).field == field


def test_a_huge_document_is_refused_before_it_is_parsed():
    error = rejected("[" * (MAX_DOCUMENT_CHARS + 1))
    assert error.field == "builder" and "characters" in error.reason


@pytest.mark.parametrize("raw", ["not json", "[]", "null", json.dumps([doc()])])
def test_anything_but_a_json_object_is_refused(raw):  # type: ignore[no-untyped-def]
    assert rejected(raw).field == "builder"


def test_a_table_this_site_lacks_is_unknown():
    schema = builder_schema().restricted_to({"user", "course"})
    with pytest.raises(FieldError) as caught:
        parse_document(doc(), schema)
    assert caught.value.field == "joins[0]"


def test_no_credential_column_is_ever_offered():
    from common.customsql.whitelist import CREDENTIAL_COLUMNS, REPORT_TABLES

    schema = builder_schema()
    assert set(schema.tables) <= REPORT_TABLES
    for name, table in schema.tables.items():
        offered = {c.name for c in table.columns}
        assert not offered & CREDENTIAL_COLUMNS.get(name, frozenset()), name
    assert schema.tables["user"].label == "Learners"
    assert schema.tables["user"].column("timecreated").type == "datetime"  # type: ignore[union-attr]
    assert schema.tables["user"].column("deleted").type == "boolean"  # type: ignore[union-attr]
    assert schema.tables["grade_grades"].column("finalgrade").type == "number"  # type: ignore[union-attr]


def test_joins_are_offered_along_known_foreign_keys():
    schema = builder_schema()
    from_user = {r.key for r in schema.joins_from(["user"])}
    assert {"user_enrolments.userid=user.id", "course_completions.userid=user.id",
            "company_users.userid=user.id", "cohort_members.userid=user.id",
            "grade_grades.userid=user.id", "quiz_attempts.userid=user.id"} <= from_user  # fmt: skip
    assert "enrol.courseid=course.id" in {
        r.key for r in schema.joins_from(["user_enrolments", "enrol"])
    } | {r.key for r in schema.joins_from(["enrol"])}
    assert not any("course.id" in key for key in from_user)  # user and course: no direct key
