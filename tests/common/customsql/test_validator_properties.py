"""Property tests: queries built from grammar pieces, forbidden ones included. Whatever the
validator accepts holds no forbidden node once printed and read back; whatever it rejects is
rejected with a QueryRejected that names the thing or the place."""

from __future__ import annotations

import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from common.customsql.validator import QueryRejected, validate
from common.customsql.whitelist import ALLOWED_FUNCTIONS, CREDENTIAL_COLUMNS, REPORT_TABLES

CTE_NAMES = ("cte_a", "cte_b")

ALLOWED_TABLES = ["{user}", "{course}", "mdl_course_modules", "prefix_quiz", "{enrol}", "{groups}"]
FORBIDDEN_TABLES = [
    "{config}",
    "mdl_sessions",
    "prefix_external_tokens",
    "information_schema.tables",
    "mysql.user",
    "user",
    "{manireports_report_runs}",
    "`mdl_config`",
    "moodle.mdl_course",
]
ALLOWED_EXPRESSIONS = [
    "id",
    "t.id",
    "1",
    "'grant.delete@example.com'",
    ":courseid",
    "COUNT(*)",
    "IFNULL(t.id, 0)",
    "FROM_UNIXTIME(timecreated)",
    "CASE WHEN id > 1 THEN 'a' ELSE 'b' END",
    "ROW_NUMBER() OVER (ORDER BY id)",
    "username",
]
FORBIDDEN_EXPRESSIONS = [
    "password",
    "t.password",
    "secret",
    "enrolmentkey",
    "@x",
    "@@version",
    "?",
    "SLEEP(1)",
    "BENCHMARK(10, 1)",
    "LOAD_FILE('/etc/passwd')",
    "USER()",
    "VERSION()",
    "GET_LOCK('a', 1)",
    "@a := 1",
    "mysql.user.password",
]
SUFFIXES = [
    "",
    ";",
    "; DROP TABLE mdl_user",
    " FOR UPDATE",
    " LOCK IN SHARE MODE",
    " INTO OUTFILE '/tmp/x'",
    " /*! UNION SELECT 1 */",
    " -- trailing comment",
    " /*+ BKA(t) */",
    ";;",
]
FORBIDDEN_FUNCTIONS = {"SLEEP", "BENCHMARK", "LOAD_FILE", "USER", "VERSION", "GET_LOCK"}

tables = st.sampled_from(ALLOWED_TABLES + FORBIDDEN_TABLES + list(CTE_NAMES))
expressions = st.sampled_from(ALLOWED_EXPRESSIONS + FORBIDDEN_EXPRESSIONS)


@st.composite
def selects(draw: st.DrawFn, depth: int = 0) -> str:
    columns = draw(
        st.lists(st.one_of(expressions, st.sampled_from(["*", "t.*"])), min_size=1, max_size=3)
    )
    source = draw(tables)
    if depth < 2 and draw(st.booleans()):
        source = f"({draw(selects(depth + 1))})"
    sql = f"SELECT {', '.join(columns)} FROM {source} t"
    if draw(st.booleans()):
        sql += f" JOIN {draw(tables)} j ON j.id = t.id"
    elif draw(st.booleans()):  # tables joined in parentheses
        sql = sql.replace(
            f" FROM {source} t",
            f" FROM ({source} t JOIN ({draw(tables)} p JOIN {draw(tables)} q ON 1 = 1) ON 1 = 1)",
        )
    if draw(st.booleans()):
        condition = draw(expressions)
        if depth < 2 and draw(st.booleans()):
            condition = f"t.id IN ({draw(selects(depth + 1))})"
        sql += f" WHERE {condition} IS NOT NULL"
    if draw(st.booleans()):
        sql += f" ORDER BY {draw(expressions)}"
    return sql


@st.composite
def queries(draw: st.DrawFn) -> str:
    body = draw(selects())
    if draw(st.booleans()):
        body += f" UNION ALL {draw(selects())}"
    if draw(st.booleans()):
        ctes = [f"{name} AS ({draw(selects(1))})" for name in CTE_NAMES[: draw(st.integers(1, 2))]]
        body = f"WITH {', '.join(ctes)} {body}"
    return body + draw(st.sampled_from(SUFFIXES))


def assert_nothing_forbidden(printed: str, tables: frozenset[str]) -> None:
    """An independent reading of what the database would run."""
    tree = sqlglot.parse_one(printed, read="mysql")
    assert isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except | exp.Subquery)
    banned = (
        exp.Insert, exp.Update, exp.Delete, exp.Drop, exp.Create, exp.Command, exp.Set,
        exp.Into, exp.Lock, exp.Parameter, exp.SessionParameter, exp.Hint, exp.PropertyEQ,
    )  # fmt: skip
    for node in tree.walk():
        assert not isinstance(node, banned), (type(node).__name__, printed)
        assert not node.comments, printed
        if isinstance(node, exp.Placeholder):
            assert node.this, printed
        if isinstance(node, exp.Anonymous):
            assert node.name.upper() in ALLOWED_FUNCTIONS, printed
        if isinstance(node, exp.Func):
            assert node.sql_name().upper() not in FORBIDDEN_FUNCTIONS, printed
        if isinstance(node, exp.Table):
            assert not node.args.get("db"), printed
            if node.name not in CTE_NAMES:
                assert node.name.startswith("mdl_"), printed
                assert node.name.removeprefix("mdl_") in REPORT_TABLES, printed
        if isinstance(node, exp.Column):
            assert not node.args.get("db"), printed
            for table in tables:
                assert node.name.lower() not in CREDENTIAL_COLUMNS.get(table, ()), printed
    for select in tree.find_all(exp.Select):
        if isinstance(select.parent, exp.Exists):
            continue
        stars = [
            p for p in select.expressions if isinstance(p, exp.Star) or isinstance(p.this, exp.Star)
        ]
        if not stars:
            continue
        # every table this SELECT itself reads, parenthesised joins included
        sources = [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]
        for source in sources:
            if isinstance(source, exp.Table) and source.name not in CTE_NAMES:
                name = source.name.removeprefix("mdl_")
                qualifiers = {p.table for p in stars if isinstance(p, exp.Column)}
                unqualified = any(isinstance(p, exp.Star) for p in stars)
                if unqualified or source.alias_or_name in qualifiers:
                    assert name not in CREDENTIAL_COLUMNS, printed


PROPERTY_SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(queries())
def test_whatever_is_accepted_holds_no_forbidden_node(sql: str) -> None:
    try:
        checked = validate(sql)
    except QueryRejected as error:
        message = str(error)
        placed = error.line is not None and f"line {error.line}, column {error.column}" in message
        assert placed or (error.name and error.name.lower() in message.lower()), message
        return
    assert_nothing_forbidden(checked.sql_for("mysql"), checked.tables)
    sqlglot.parse_one(checked.sql_for("sqlite"), read="sqlite")


@PROPERTY_SETTINGS
@given(st.text(max_size=300))
def test_any_text_is_accepted_safely_or_rejected_cleanly(sql: str) -> None:
    try:
        checked = validate(sql)
    except QueryRejected:
        return
    assert_nothing_forbidden(checked.sql_for("mysql"), checked.tables)


SQL_ALPHABET = st.sampled_from(
    ["SELECT", " ", "id", "password", ",", "*", "FROM", "{user}", "{config}", "mdl_course", "(",
     ")",
     ";", "--", "\n", "/*", "*/", "/*!", "'", "`", "@", "@@", ":p", "?", "UNION", "WHERE", "=", "1",
     "SLEEP(1)", "INTO", "FOR UPDATE", "DROP", "\u00a0", "\x00", "#", "\\", "\""]
)  # fmt: skip


@PROPERTY_SETTINGS
@given(st.lists(SQL_ALPHABET, max_size=30).map("".join))
def test_token_soup_is_accepted_safely_or_rejected_cleanly(sql: str) -> None:
    try:
        checked = validate(sql)
    except QueryRejected:
        return
    assert_nothing_forbidden(checked.sql_for("mysql"), checked.tables)
