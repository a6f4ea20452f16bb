"""Running validated custom SQL on the Moodle DB (SQLite, MariaDB, PostgreSQL): values bound,
never spliced; a time limit the database enforces, after which the same connection still works;
a row cap; sorted windows; a read-only transaction even for what the validator would miss."""

import logging
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import event, func, select

from common.customsql.execute import (
    QueryFailed,
    QueryResult,
    QueryTimeout,
    Window,
    count_checked,
    result_columns,
    run_checked,
)
from common.customsql.params import QueryParam, parse_param_values
from common.customsql.site_dialect import written_dialect
from common.customsql.validator import validate
from common.db import make_engine
from common.errors import FieldError
from common.moodle import MoodleSource
from tests.conftest import ALL_DATABASES, _empty_database
from tests.factories.sites import build_site

# Allowed by the validator (only whitelisted tables, no forbidden function), yet ~10^9 rows:
# the one way such a query ends in time is the limit.
SLOW = """
    WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
    SELECT COUNT(*) AS pairs FROM n a CROSS JOIN n b CROSS JOIN n c
    JOIN mdl_course co ON co.id = 1
"""
HOSTILE = [
    "1 OR 1=1",
    "' OR '1'='1",
    "admin' -- ",
    "admin'#",
    "'; DROP TABLE mdl_user; --",
    "\\'; DROP TABLE mdl_user; -- ",
    "\u2019 OR \u20181\u2019=\u20181",  # typographic quotes
    "\u02bc; DELETE FROM mdl_user; --",  # modifier letter apostrophe
    "\uff07 OR 1=1 --",  # fullwidth apostrophe
    "%' OR username LIKE '%",
    ":name",
    "0x61646d696e",
]


@pytest.fixture(scope="module", params=ALL_DATABASES)
def shared_site(request, tmp_path_factory):
    """One two-company site per database for the module: nothing here writes to it."""
    for url in _empty_database(request.param, tmp_path_factory.mktemp("moodle"), "moodle"):
        yield build_site(url)


@pytest.fixture
def source(shared_site):
    """The site's Moodle source on a pool of one connection: every query reuses it."""
    moodle = MoodleSource(shared_site.url)
    moodle.engine.dispose()
    moodle.engine = make_engine(shared_site.url, read_only=True, pool_size=1, max_overflow=0,
                                pool_timeout=5)  # fmt: skip
    yield moodle
    moodle.dispose()


def user_count(source):
    with source.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(source.tables.user))


def checked_for(source, sql):
    """The query validated as the site's authors write it (PostgreSQL's dialect on PostgreSQL)."""
    return validate(sql, source.prefix, written_dialect(source))


def run(source, sql, values=None, **limits) -> QueryResult:
    return run_checked(source, checked_for(source, sql), values or {}, **limits)


@pytest.mark.parametrize("value", HOSTILE)
def test_values_carrying_sql_never_change_the_statement(source, value):
    before = user_count(source)
    by_name = "SELECT id, username FROM mdl_user WHERE username = :name ORDER BY id"
    assert run(source, by_name, {"name": value}).rows == []
    assert run(source, by_name, {"name": "nobody"}).rows == []
    assert run(source, by_name, {"name": "admin"}).rows == [(2, "admin")]
    # The value comes back exactly as given: it was data, never SQL.
    echoed = run(source, "SELECT :name AS v FROM mdl_course WHERE id = 1", {"name": value})
    assert echoed.rows == [(value,)]
    like = "SELECT COUNT(*) AS n FROM mdl_user WHERE firstname LIKE :name"
    assert run(source, like, {"name": value}).rows == [(0,)]
    assert user_count(source) == before > 10


def test_a_typed_value_carrying_sql_is_refused_before_it_reaches_the_database(source):
    checked = checked_for(source, "SELECT id FROM mdl_user WHERE id = :uid")
    params = [QueryParam("uid", "int", "User")]
    with pytest.raises(FieldError, match="is not a whole number"):
        parse_param_values(params, {"uid": "1 OR 1=1"}, bound_company=None)
    values = parse_param_values(params, {"uid": "2"}, bound_company=None)
    assert run_checked(source, checked, values).rows == [(2,)]


def checkouts(source):
    """The DBAPI connections the engine hands out, and how many were thrown away."""
    seen = {"connections": [], "invalidated": 0}

    @event.listens_for(source.engine, "checkout")
    def _checkout(dbapi_conn, record, proxy):  # type: ignore[no-untyped-def]
        seen["connections"].append(dbapi_conn)

    @event.listens_for(source.engine, "invalidate")
    def _invalidate(dbapi_conn, record, exc):  # type: ignore[no-untyped-def]
        seen["invalidated"] += 1

    return seen


def test_a_query_past_its_limit_is_stopped_and_the_same_connection_still_works(source, caplog):
    seen = checkouts(source)
    assert run(source, "SELECT id FROM mdl_course WHERE id = 1").rows == [(1,)]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "common.customsql.execute"):
        with pytest.raises(QueryTimeout) as caught:
            run(source, SLOW, timeout_s=0.5)
    stopped_after = time.monotonic() - started
    assert 0.45 < stopped_after < 3, stopped_after
    assert caught.value.reason == "the query ran past its time limit of 0.5 s and was stopped"
    assert (caught.value.field, caught.value.status) == ("sql", 504)
    assert "stopped at its 0.5 s limit" in caplog.text and "course" in caplog.text
    # The next query runs on the very same DBAPI connection, and runs in full.
    after = run(source, "SELECT COUNT(*) AS n FROM mdl_user WHERE deleted = :d", {"d": 0})
    assert after.rows == [(user_count(source) - 1,)]
    assert seen["invalidated"] == 0
    assert len(seen["connections"]) >= 3 and len({id(c) for c in seen["connections"]}) == 1
    # Long limits do not fire early, and a count obeys the limit as well.
    assert run(source, "SELECT id FROM mdl_course WHERE id = 1", timeout_s=60).rows == [(1,)]
    with pytest.raises(QueryTimeout):
        count_checked(source, checked_for(source, SLOW), {}, timeout_s=0.3)
    assert run(source, "SELECT id FROM mdl_course WHERE id = 1").rows == [(1,)]


def test_the_row_cap_cuts_the_result_and_says_so(source):
    everyone = run(source, "SELECT id FROM mdl_user ORDER BY id")
    assert not everyone.truncated and len(everyone.rows) == user_count(source)
    capped = run(source, "SELECT id FROM mdl_user ORDER BY id", max_rows=3)
    assert (capped.rows, capped.truncated) == (everyone.rows[:3], True)
    exact = run(source, "SELECT id FROM mdl_user ORDER BY id", max_rows=len(everyone.rows))
    assert (exact.rows, exact.truncated) == (everyone.rows, False)
    assert capped.columns == ["id"] and capped.elapsed_ms > 0


USERS = """
    SELECT u.id, u.username, u.deleted AS gone, COUNT(ue.id) AS enrolments
    FROM mdl_user u LEFT JOIN mdl_user_enrolments ue ON ue.userid = u.id
    WHERE u.id > :after
    GROUP BY u.id, u.username, u.deleted
"""


@pytest.mark.parametrize("descending", [False, True])
def test_windows_are_slices_of_the_whole_sorted_result(source, descending):
    checked, values = checked_for(source, USERS), {"after": 1}
    whole = run_checked(source, checked, values).rows
    total = count_checked(source, checked, values)
    assert total == len(whole) > 10
    for sort in ("id", "enrolments", "username", "gone"):
        everything = run_checked(source, checked, values,
                                 window=Window(sort, descending, 0, 1000)).rows  # fmt: skip
        assert sorted(everything) == sorted(whole)
        position = ["id", "username", "gone", "enrolments"].index(sort)
        keys = [row[position] for row in everything]
        if sort != "username":  # collations differ; numbers do not
            assert keys == sorted(keys, reverse=descending)
        pages = []
        for offset in range(0, total, 4):
            window = Window(sort, descending, offset, 4)
            pages += run_checked(source, checked, values, window=window).rows
        assert pages == everything, sort
    by_id = sorted(whole)
    assert run_checked(source, checked, values, window=Window("id", False, 3, 2)).rows == by_id[3:5]
    unsorted = run_checked(source, checked, values, window=Window(None, False, 0, 3))
    assert len(unsorted.rows) == 3 and set(unsorted.rows) <= set(whole)


def test_a_window_larger_than_the_cap_is_cut_at_the_cap(source):
    checked = checked_for(source, "SELECT id FROM mdl_user")
    result = run_checked(source, checked, {}, max_rows=5, window=Window("id", True, 1, 50))
    every = sorted((r[0] for r in run_checked(source, checked, {}).rows), reverse=True)
    assert ([r[0] for r in result.rows], result.truncated) == (every[1:6], True)


def test_a_sort_that_is_not_a_result_column_is_refused(source):
    before = user_count(source)
    for sort in ["nope", "id; DROP TABLE mdl_user", "id DESC", '"id"', "`id`", "ID", "u.id",
                 "1", "", "id -- "]:  # fmt: skip
        with pytest.raises(FieldError, match="is not a column of this report") as caught:
            run_checked(source, checked_for(source, USERS), {"after": 0}, window=Window(sort))
        assert caught.value.field == "sort"
    assert user_count(source) == before


def test_odd_column_names_sort_safely_quoted(source):
    sql = 'SELECT id AS `weird "name`, username AS `back``tick` FROM mdl_user'
    if written_dialect(source) == "postgres":  # the same names, quoted as PostgreSQL quotes
        sql = 'SELECT id AS "weird ""name", username AS "back`tick" FROM mdl_user'
    checked = checked_for(source, sql)
    assert result_columns(source, checked, {}) == ['weird "name', "back`tick"]
    rows = run_checked(source, checked, {}, window=Window('weird "name', True, 0, 3)).rows
    assert [r[0] for r in rows] == sorted((r[0] for r in run(source, sql).rows), reverse=True)[:3]


def test_a_sorted_window_needs_distinct_column_names_and_a_preview_does_not(source):
    both = "SELECT u.id, c.id FROM mdl_user u, mdl_course c"
    for window in (Window("id"), Window(None, offset=2)):
        with pytest.raises(QueryFailed, match="'id'"):
            run(source, both, window=window)
    preview = run(source, both, window=Window(None, limit=3))
    assert (preview.columns, len(preview.rows), preview.truncated) == (["id", "id"], 3, False)
    capped = run(source, both, window=Window(None, limit=50), max_rows=2)
    assert (len(capped.rows), capped.truncated) == (2, True)


def test_bad_limits_and_pages_are_refused(source):
    for limits, field in (({"timeout_s": 0}, "timeout"), ({"timeout_s": 4000}, "timeout"),
                          ({"max_rows": 0}, "max_rows")):  # fmt: skip
        with pytest.raises(FieldError) as caught:
            run(source, "SELECT id FROM mdl_user", **limits)
        assert caught.value.field == field
    with pytest.raises(FieldError, match="is not a page"):
        Window("id", offset=-1)
    with pytest.raises(FieldError, match="no value given") as missing:
        run_checked(source, checked_for(source, "SELECT id FROM mdl_user WHERE id = :uid"), {})
    assert missing.value.field == "uid"


@dataclass(frozen=True)
class Unchecked:
    """SQL that never went through the validator: what the database itself must refuse."""

    sql: str
    params: tuple[str, ...] = ()
    tables: frozenset[str] = frozenset({"user"})

    def sql_for(self, dialect: str) -> str:
        return self.sql


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM mdl_user",
        "UPDATE mdl_user SET firstname = 'x'",
        "INSERT INTO mdl_user (username) VALUES ('intruder')",
    ],
)
def test_the_transaction_is_read_only_even_for_what_the_validator_would_miss(source, sql):
    before = user_count(source)
    # PostgreSQL runs a query as a server-side cursor's, which takes no INSERT/UPDATE/DELETE
    # at all (a syntax error); the read-only transaction is proven below with a writing SELECT
    refused = "(?i)read.?only|syntax error at or near" if _on_postgres(source) else "(?i)read.?only"
    with pytest.raises(QueryFailed, match=refused):
        run_checked(source, Unchecked(sql), {})
    assert user_count(source) == before
    assert run(source, "SELECT COUNT(*) AS n FROM mdl_user").rows == [(before,)]


def _on_postgres(source) -> bool:
    return written_dialect(source) == "postgres"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT setval(pg_get_serial_sequence('mdl_user', 'id'), 1) AS id",
        "SELECT nextval(pg_get_serial_sequence('mdl_user', 'id')) AS next",
        "WITH gone AS (DELETE FROM mdl_user RETURNING id) SELECT COUNT(*) FROM gone",
    ],
)
def test_postgres_refuses_a_writing_select_in_the_read_only_transaction(source, sql):
    if not _on_postgres(source):
        pytest.skip("PostgreSQL's writing SELECTs")
    before = user_count(source)
    with pytest.raises(QueryFailed, match="(?i)read.?only|data-modifying"):
        run_checked(source, Unchecked(sql), {})
    assert user_count(source) == before
    # and the connection was handed back in working order, read-only no more than the run
    assert run(source, "SELECT COUNT(*) AS n FROM mdl_user").rows == [(before,)]


def test_a_query_the_database_refuses_is_one_clear_error(source):
    with pytest.raises(QueryFailed) as caught:
        run_checked(source, Unchecked("SELECT no_such_column FROM mdl_user"), {})
    assert caught.value.reason.startswith("the database could not run the query: ")
    assert "no_such_column" in caught.value.reason and "\n" not in caught.value.reason
    assert run(source, "SELECT id FROM mdl_course WHERE id = 1").rows == [(1,)]


def test_colons_in_quoted_text_stay_text_and_a_parameter_may_repeat(source):
    sql = "SELECT 'a :b' AS x, ':c' AS y, :v AS v FROM mdl_course WHERE id = :v OR id = :v"
    assert run(source, sql, {"v": 1}).rows == [("a :b", ":c", 1)]
