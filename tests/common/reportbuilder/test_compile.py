"""Compiled documents: every operator and aggregate passes the validator and returns the rows
it should (SQLite and MariaDB); values a person typed never become SQL text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp, parse_one

from common.customsql.execute import run_checked
from common.customsql.params import declare_params, parse_param_values
from common.moodle import MoodleSource
from common.reportbuilder.compile import compile_checked, compile_document
from common.reportbuilder.document import (
    AGGREGATES,
    OPERATORS,
    BuilderDocument,
    parse_document,
)
from common.reportbuilder.schema import COMPANY_COLUMNS, builder_schema
from tests.factories.sites import DAY, NOW, Site

SCHEMA = builder_schema()
LEARNERS = {"lastname": "eq", "value": "Learner"}


def day(days_ago: int) -> str:
    return datetime.fromtimestamp(NOW - days_ago * DAY, UTC).date().isoformat()


def parsed(document: dict[str, Any]) -> BuilderDocument:
    return parse_document(document, SCHEMA)


def run(site: Site, document: dict[str, Any], company: int | None = None) -> list[tuple[Any, ...]]:
    source = MoodleSource(site.url)
    try:
        compiled, checked = compile_checked(parsed(document), SCHEMA, source.prefix)
        declared = declare_params(checked, compiled.query_params())
        values = parse_param_values(declared, {}, bound_company=company)
        return run_checked(source, checked, values).rows
    finally:
        source.engine.dispose()


def learners(*filters: dict[str, Any]) -> dict[str, Any]:
    """Learners' first names (not deleted, last name Learner) with extra filters on user."""
    base = [{"table": "user", "column": "lastname", "op": "eq", "value": "Learner"},
            {"table": "user", "column": "deleted", "op": "is_false"}]  # fmt: skip
    return {"base": "user", "columns": [{"table": "user", "column": "firstname"}],
            "filters": base + [{"table": "user", **f} for f in filters]}  # fmt: skip


def first_names(rows: list[tuple[Any, ...]]) -> set[str]:
    return {str(r[0]) for r in rows}


EVERYONE = {"Ana", "Ben", "Cara", "Dan", "Yuri", "Zoe", "Xena"}


TEXT_AND_FLAG_CASES = [
        ({"column": "firstname", "op": "eq", "value": "Ana"}, {"Ana"}),
        ({"column": "firstname", "op": "ne", "value": "Ana"}, EVERYONE - {"Ana"}),
        ({"column": "firstname", "op": "contains", "value": "AN"}, {"Ana", "Dan"}),
        ({"column": "firstname", "op": "starts_with", "value": "z"}, {"Zoe"}),
        ({"column": "firstname", "op": "in", "value": ["Ana", "Zoe", "Nobody"]}, {"Ana", "Zoe"}),
        ({"column": "idnumber", "op": "is_empty"}, EVERYONE),
        ({"column": "idnumber", "op": "not_empty"}, set()),
        ({"column": "suspended", "op": "is_true"}, set()),
        # Wildcards are literal: `%` finds only a `%`.
        ({"column": "firstname", "op": "contains", "value": "%"}, set()),
        ({"column": "firstname", "op": "contains", "value": "_"}, set()),
]  # fmt: skip


def test_text_and_flag_operators(site):  # type: ignore[no-untyped-def]
    for extra, expected in TEXT_AND_FLAG_CASES:
        assert first_names(run(site, learners(extra))) == expected, extra


def test_number_operators(site):  # type: ignore[no-untyped-def]
    ids = sorted(site.users[n] for n in ("ana", "ben", "cara", "dan"))
    low, high = str(ids[1]), str(ids[2])
    assert first_names(
        run(site, learners({"column": "id", "op": "between", "value": [low, high]}))
    ) == {"Ben", "Cara"}
    below = first_names(run(site, learners({"column": "id", "op": "lt", "value": low})))
    assert below == {"Ana"}
    above = first_names(run(site, learners({"column": "id", "op": "gt", "value": high})))
    assert above == EVERYONE - {"Ana", "Ben", "Cara"}
    assert first_names(run(site, learners({"column": "id", "op": "in", "value": [low]}))) == {"Ben"}


def completions(*filters: dict[str, Any]) -> dict[str, Any]:
    return {
        "base": "course_completions",
        "joins": [{"relation": "course_completions.userid=user.id"}],
        "columns": [{"table": "user", "column": "firstname"}],
        "filters": [
            {"table": "course_completions", "column": "timecompleted", **f} for f in filters
        ],
    }


COMPLETED = {"Ana", "Ben", "Cara", "Dan", "Gone", "Yuri", "Zoe"}
DATE_CASES = [
        ({"op": "before", "value": day(50)}, {"Dan", "Yuri"}),
        ({"op": "after", "value": day(9)}, {"Ana", "Cara", "Gone", "Yuri", "Zoe"}),
        ({"op": "date_between", "value": [day(12), day(9)]}, {"Ana"}),
        ({"op": "in_last_days", "value": 36_500}, COMPLETED),
        ({"op": "not_empty"}, COMPLETED),
]  # fmt: skip


def test_date_operators(site):  # type: ignore[no-untyped-def]
    for extra, expected in DATE_CASES:
        assert first_names(run(site, completions(extra))) == expected, extra


def test_every_aggregate_groups_by_the_other_columns(site):  # type: ignore[no-untyped-def]
    document = {
        "base": "course_completions",
        "joins": [{"relation": "course_completions.course=course.id"}],
        "columns": [{"table": "course", "column": "fullname"},
                    {"table": "course_completions", "column": "id", "aggregate": "count"},
                    {"table": "course_completions", "column": "userid",
                     "aggregate": "count_distinct"},
                    {"table": "course_completions", "column": "timecompleted", "aggregate": "min"},
                    {"table": "course_completions", "column": "timecompleted", "aggregate": "max"},
                    {"table": "course_completions", "column": "reaggregate", "aggregate": "sum"},
                    {"table": "course_completions", "column": "userid", "aggregate": "avg"}],
        "filters": [{"table": "course_completions", "column": "timecompleted", "op": "not_empty"}],
        "sort": [{"column": 0, "direction": "asc"}],
    }  # fmt: skip
    rows = run(site, document)
    by_course = {r[0]: r for r in rows}
    assert [r[0] for r in rows] == sorted(by_course)
    assert by_course["Fire Safety"][1:3] == (3, 3)
    assert by_course["Forklift"][1:3] == (2, 2)
    assert int(by_course["Fire Safety"][3]) == NOW - 200 * DAY
    assert int(by_course["Fire Safety"][4]) == NOW - 3 * DAY
    assert int(by_course["Fire Safety"][5] or 0) == 0
    assert "Induction (no learners yet)" not in by_course
    assert set(AGGREGATES) == {"count", "count_distinct", "sum", "avg", "min", "max"}


def test_keep_unmatched_is_a_left_join(site):  # type: ignore[no-untyped-def]
    document = {
        "base": "course",
        "joins": [{"relation": "course_completions.course=course.id", "keep_unmatched": True}],
        "columns": [{"table": "course", "column": "fullname"},
                    {"table": "course_completions", "column": "id", "aggregate": "count"}],
    }  # fmt: skip
    counts = {r[0]: r[1] for r in run(site, document)}
    assert counts["Induction (no learners yet)"] == 0
    document["joins"][0]["keep_unmatched"] = False
    assert "Induction (no learners yet)" not in {r[0] for r in run(site, document)}


def test_the_viewers_company_filter_binds_companyid(site):  # type: ignore[no-untyped-def]
    document = {
        "base": "user",
        "joins": [{"relation": "company_users.userid=user.id"}],
        "columns": [{"table": "user", "column": "firstname"}],
        "filters": [{"table": "company_users", "column": "companyid", "op": "viewer_company"},
                    {"table": "user", "column": "lastname", "op": "eq", "value": "Learner"}],
    }  # fmt: skip
    compiled = compile_document(parsed(document), SCHEMA)
    assert compiled.company_safe and ":companyid" in compiled.sql
    assert [p.type for p in compiled.query_params() if p.name == "companyid"] == ["company"]
    assert first_names(run(site, document, site.companies["B"])) == {"Yuri", "Zoe", "Xena"}
    assert "Ana" in first_names(run(site, document, site.companies["A"]))
    wrong = {**document, "filters": [{"table": "user", "column": "id", "op": "viewer_company"}]}
    from common.errors import FieldError

    with pytest.raises(FieldError, match="does not hold a company id"):
        parsed(wrong)


HOSTILE = [
    "'; DROP TABLE mdl_user; --",
    '" OR 1=1 --',
    "` UNION SELECT password FROM mdl_user --",
    "x') OR ('1'='1",
    ":p2",
    "/*!50000 SLEEP(5)*/",
    "\\'; SELECT 1; --",
    "Ana\u200b",
]


def test_hostile_values_are_bound_never_written_into_the_sql(site):  # type: ignore[no-untyped-def]
    for value in HOSTILE:
        hostile(site, value)


def hostile(site: Site, value: str) -> None:
    document = learners({"column": "firstname", "op": "eq", "value": value},
                        {"column": "email", "op": "contains", "value": value},
                        {"column": "username", "op": "in", "value": [value, "ana"]})  # fmt: skip
    compiled = compile_document(parsed(document), SCHEMA)
    for fragment in ("DROP", "UNION", "SLEEP", "1=1", "'1'='1"):
        if fragment in value:
            assert fragment not in compiled.sql
    assert {v.value for v in compiled.values} >= {value.strip()}
    assert run(site, document) == []  # no learner is called that: the value stayed a value


def test_a_control_character_in_a_value_is_refused_by_name():
    from common.errors import FieldError

    with pytest.raises(FieldError) as caught:
        parsed(learners({"column": "firstname", "op": "eq", "value": "Ana\u0000"}))
    assert caught.value.field == "filters[2].value"


def test_the_same_document_gives_the_same_sql():
    document = learners({"column": "firstname", "op": "contains", "value": "a"})
    assert (
        compile_document(parsed(document), SCHEMA).sql
        == compile_document(parsed(document), SCHEMA).sql
    )


# Hypothesis: any document the builder accepts compiles to SQL the validator accepts, whose
# every literal is a number or an empty string we wrote — never a value a person typed.
TABLE_NAMES = sorted(SCHEMA.tables)
OPS_FOR = {t: [op for op, (_, types, _) in OPERATORS.items() if t in types] for t in
           ("text", "int", "number", "datetime", "boolean")}  # fmt: skip
TEXTS = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30).filter(
    lambda s: s.strip() != ""
)


ONE_VALUE = {
    "text": TEXTS,
    "int": st.integers(-(10**12), 10**12).map(str),
    "number": st.decimals(-1000, 1000, places=2).map(str),
}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.sampled_from(TABLE_NAMES))
    chosen, joins = [base], []
    for _ in range(draw(st.integers(0, 3))):
        offered = SCHEMA.joins_from(chosen)
        if not offered:
            break
        relation = draw(st.sampled_from(offered))
        joins.append({"relation": relation.key, "keep_unmatched": draw(st.booleans())})
        chosen.append(
            relation.other(relation.child if relation.child in chosen else relation.parent)
        )

    def a_column() -> tuple[str, Any]:
        table = draw(st.sampled_from(chosen))
        return table, draw(st.sampled_from(SCHEMA.tables[table].columns))

    columns = []
    for _ in range(draw(st.integers(1, 4))):
        table, col = a_column()
        aggs = [a for a, (_, types) in AGGREGATES.items() if col.type in types]
        columns.append({"table": table, "column": col.name,
                        "aggregate": draw(st.sampled_from([None, *aggs]))})  # fmt: skip
    filters = []
    for _ in range(draw(st.integers(0, 3))):
        table, col = a_column()
        ops = OPS_FOR[col.type]
        if (table, col.name) not in COMPANY_COLUMNS:
            ops = [op for op in ops if op != "viewer_company"]
        op = draw(st.sampled_from(ops))
        shape = OPERATORS[op][2]
        one = ONE_VALUE.get(col.type, TEXTS)
        dates = st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10)
        value = {None: st.none(), "one": one, "two": st.lists(one, min_size=2, max_size=2),
                 "list": st.lists(one, min_size=1, max_size=5), "date": dates,
                 "dates": st.lists(dates, min_size=2, max_size=2),
                 "days": st.integers(1, 3650)}[shape]  # fmt: skip
        filters.append({"table": table, "column": col.name, "op": op, "value": draw(value)})
    sort = []
    if draw(st.booleans()):
        direction = draw(st.sampled_from(["asc", "desc"]))
        sort = [{"column": draw(st.integers(0, len(columns) - 1)), "direction": direction}]
    return {"base": base, "joins": joins, "columns": columns, "filters": filters, "sort": sort,
            "limit": draw(st.integers(1, 10_000))}  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_every_accepted_document_compiles_to_sql_the_validator_accepts(document):  # type: ignore[no-untyped-def]
    doc = parse_document(json.dumps(document), SCHEMA)
    compiled, checked = compile_checked(doc, SCHEMA)
    company = {"companyid"} if doc.company_safe else set()
    assert set(checked.params) == {v.name for v in compiled.values} | company
    assert checked.tables == set(doc.tables)
    for dialect in ("mysql", "sqlite"):
        assert checked.sql_for(dialect)
    tree = parse_one(compiled.sql, read="mysql")
    literals = {lit.this for lit in tree.find_all(exp.Literal)}
    typed = {v.value for v in compiled.values}
    assert literals <= {"0", "1", "86400", "", str(doc.limit)} | (typed & {"0", "1", "86400"})
