"""Printing a checked query for the database that runs it (MariaDB/MySQL, SQLite, PostgreSQL).

The tree was parsed as MySQL and sqlglot transpiles it. SQLite (the demo site) lacks the MySQL
date functions Moodle reports lean on, so before printing for SQLite a copy of the tree has
FROM_UNIXTIME, UNIX_TIMESTAMP, NOW, YEAR … SECOND, DAYOFWEEK, QUARTER, EXTRACT, LEFT/RIGHT,
DATE_ADD/DATE_SUB and `± INTERVAL`, and TIMESTAMPDIFF rewritten into SQLite's STRFTIME/DATETIME
forms; other MySQL-only functions (LPAD, STDDEV, REGEXP …) print as they are and need
MariaDB/MySQL. The rewrite edits the tree rather than subclassing sqlglot's generator, so it
also works with sqlglot's compiled build (sqlglotc). A colon that would start `:name` inside
quoted text is escaped as `\\:`, since SQLAlchemy's text() would take it for a bind.

For PostgreSQL the tree is either PostgreSQL's own (a PostgreSQL site's custom SQL) or MySQL's
(the report builder's), which sqlglot transpiles; the one MySQL call it leaves as it is and
PostgreSQL lacks, UNIX_TIMESTAMP(), becomes EXTRACT(EPOCH …). sqlglot prints a placeholder as
psycopg's `%(name)s`; it is kept as `:name` for SQLAlchemy's text().
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.dialects.postgres import Postgres
from sqlglot.dialects.sqlite import SQLite

_PARTS: dict[type[exp.Expr], str] = {
    exp.Year: "%Y",
    exp.Month: "%m",
    exp.Day: "%d",
    exp.DayOfMonth: "%d",
    exp.DayOfYear: "%j",
    exp.Hour: "%H",
    exp.Minute: "%M",
    exp.Second: "%S",
}
_NAMED_PARTS = {"YEAR": "%Y", "MONTH": "%m", "DAY": "%d", "HOUR": "%H", "MINUTE": "%M"}
_NAMED_PARTS |= {"SECOND": "%S"}
# interval unit -> (SQLite modifier unit, multiplier)
_UNITS = {
    "SECOND": ("seconds", 1),
    "MINUTE": ("minutes", 1),
    "HOUR": ("hours", 1),
    "DAY": ("days", 1),
    "WEEK": ("days", 7),
    "MONTH": ("months", 1),
    "QUARTER": ("months", 3),
    "YEAR": ("years", 1),
}
_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 604800}


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _int(value: exp.Expr) -> exp.Expr:
    return exp.Cast(this=value, to=exp.DataType.build("INT"))


def _strftime(pattern: str, value: exp.Expr, *modifiers: exp.Expr) -> exp.Expr:
    return _call("STRFTIME", exp.Literal.string(pattern), value, *modifiers)


def _unwrapped(value: exp.Expr) -> exp.Expr:
    """sqlglot wraps date arguments in TsOrDsTo…; SQLite's functions take the text as it is."""
    while isinstance(value, exp.TsOrDsToDate | exp.TsOrDsToTimestamp):
        value = value.this
    return value


def _unit(node: exp.Expr, key: str = "unit") -> str:
    unit = node.args.get(key)
    return unit.name.upper() if isinstance(unit, exp.Expr) and unit.name else "DAY"


def _shift(value: exp.Expr, amount: exp.Expr, unit: str, sign: int) -> exp.Expr:
    name, times = _UNITS.get(unit, (unit.lower(), 1))
    if isinstance(amount, exp.Literal) and re.fullmatch(r"-?\d+(\.\d+)?", amount.name):
        shifted = float(amount.name) * times * sign
        modifier: exp.Expr = exp.Literal.string(f"{shifted:+g} {name}")
    else:
        # SQLite reads "-7 days" and "7 days" (a '+' before a negative number it would refuse)
        scaled: exp.Expr = exp.Paren(this=amount)
        if times * sign != 1:
            scaled = exp.Mul(this=scaled, expression=exp.Literal.number(times * sign))
        modifier = exp.DPipe(this=scaled, expression=exp.Literal.string(f" {name}"))
    return _call("DATETIME", _unwrapped(value), modifier)


def _seconds(value: exp.Expr) -> exp.Expr:
    return _int(_strftime("%s", value))


def _timestampdiff(node: exp.Expr) -> exp.Expr:
    unit = _unit(node)
    later, earlier = _unwrapped(node.this), _unwrapped(node.expression)
    if unit in _SECONDS:
        diff: exp.Expr = exp.Paren(this=exp.Sub(this=_seconds(later), expression=_seconds(earlier)))
        if _SECONDS[unit] == 1:
            return diff
        return exp.Paren(this=exp.IntDiv(this=diff, expression=exp.Literal.number(_SECONDS[unit])))
    years = exp.Sub(this=_int(_strftime("%Y", later)), expression=_int(_strftime("%Y", earlier)))
    months = exp.Sub(this=_int(_strftime("%m", later)), expression=_int(_strftime("%m", earlier)))
    total = exp.Paren(
        this=exp.Add(this=exp.Mul(this=exp.Paren(this=years), expression=exp.Literal.number(12)),
                     expression=months)
    )  # fmt: skip
    if unit == "MONTH":
        return total
    return exp.Paren(this=exp.IntDiv(this=total, expression=exp.Literal.number(12)))


def _interval_shift(node: exp.Expr) -> exp.Expr | None:
    sign = 1 if isinstance(node, exp.Add) else -1
    left, right = node.this, node.expression
    if isinstance(right, exp.Interval):
        return _shift(left, right.this, _unit(right), sign)
    if isinstance(left, exp.Interval) and sign == 1:
        return _shift(right, left.this, _unit(left), 1)
    return None


def _anonymous(node: exp.Anonymous) -> exp.Expr | None:
    name, args = node.name.upper(), node.expressions
    if name == "UNIX_TIMESTAMP" and len(args) <= 1:
        return _seconds(_unwrapped(args[0]) if args else exp.Literal.string("now"))
    if name == "NOW" and not args:
        return _call("DATETIME", exp.Literal.string("now"))
    if name in ("HOUR", "MINUTE", "SECOND") and len(args) == 1:
        return _int(_strftime(_NAMED_PARTS[name], _unwrapped(args[0])))
    if name == "WEEKDAY" and len(args) == 1:
        shifted = exp.Add(this=_int(_strftime("%w", args[0])), expression=exp.Literal.number(6))
        return exp.Paren(
            this=exp.Mod(this=exp.Paren(this=shifted), expression=exp.Literal.number(7))
        )
    return None


def _for_sqlite(node: exp.Expr) -> exp.Expr | None:
    """SQLite's form of one MySQL node, or None when it prints as it is."""
    kind = type(node)
    if kind in _PARTS:
        return _int(_strftime(_PARTS[kind], _unwrapped(node.this)))
    if kind is exp.UnixToTime:
        fmt = node.args.get("format")
        if isinstance(fmt, exp.Literal):
            converted = MySQL.format_time(fmt)
            assert converted is not None
            return _call("STRFTIME", converted, node.this, exp.Literal.string("unixepoch"))
        return _call("DATETIME", node.this, exp.Literal.string("unixepoch"))
    if kind in (exp.DateAdd, exp.DateSub):
        sign = -1 if kind is exp.DateSub else 1
        return _shift(node.this, node.expression, _unit(node), sign)
    if kind in (exp.Add, exp.Sub):
        return _interval_shift(node)
    if kind is exp.TimestampDiff:
        return _timestampdiff(node)
    if kind is exp.Extract:
        pattern = _NAMED_PARTS.get(node.this.name.upper())
        return _int(_strftime(pattern, _unwrapped(node.expression))) if pattern else None
    if kind is exp.DayOfWeek:
        weekday = _int(_strftime("%w", _unwrapped(node.this)))
        return exp.Paren(this=exp.Add(this=weekday, expression=exp.Literal.number(1)))
    if kind is exp.Quarter:
        month = _int(_strftime("%m", _unwrapped(node.this)))
        plus = exp.Paren(this=exp.Add(this=month, expression=exp.Literal.number(2)))
        return exp.Paren(this=exp.IntDiv(this=plus, expression=exp.Literal.number(3)))
    if kind is exp.Left:
        return _call("SUBSTR", node.this, exp.Literal.number(1), node.expression)
    if kind is exp.Right:
        return _call("SUBSTR", node.this, exp.Neg(this=exp.Paren(this=node.expression)))
    if isinstance(node, exp.Anonymous):
        return _anonymous(node)
    return None


def sqlite_tree(tree: exp.Expr) -> exp.Expr:
    """A copy of the tree with the MySQL functions SQLite lacks rewritten, innermost first."""
    return _rewritten(tree, _for_sqlite)


def _for_postgres(node: exp.Expr) -> exp.Expr | None:
    """PostgreSQL's form of one node, or None when sqlglot prints it right."""
    if isinstance(node, exp.Placeholder) and isinstance(node.this, str) and node.this:
        return exp.Var(this=f":{node.this}")
    if isinstance(node, exp.Anonymous) and node.name.upper() == "UNIX_TIMESTAMP":
        moment = node.expressions[0] if node.expressions else exp.CurrentTimestamp()
        epoch = exp.Extract(this=exp.var("EPOCH"), expression=moment)
        return exp.Cast(this=epoch, to=exp.DataType.build("BIGINT"))
    return None


def _rewritten(tree: exp.Expr, rewrite: Callable[[exp.Expr], exp.Expr | None]) -> exp.Expr:
    """A copy of the tree with ``rewrite`` applied to every node, innermost first."""
    root = tree.copy()
    for node in reversed(list(root.walk(bfs=False))):
        replacement = rewrite(node)
        if replacement is not None:
            if node is root:
                root = replacement
            else:
                node.replace(replacement)
    return root


def postgres_tree(tree: exp.Expr) -> exp.Expr:
    return _rewritten(tree, _for_postgres)


_DIALECTS = {"mysql": MySQL(), "sqlite": SQLite(), "postgres": Postgres()}

# A colon that SQLAlchemy's text() would take for `:name`, inside quoted text or a quoted name.
_QUOTED = {
    "mysql": re.compile(r"'(?:[^'\\]|\\.|'')*'|`(?:[^`]|``)*`"),
    "sqlite": re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""),
    "postgres": re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""),
}
_BIND_LIKE = re.compile(r"(?<![:\w\\]):(?=\w)")


def _escape_colons(match: re.Match[str]) -> str:
    return _BIND_LIKE.sub(r"\\:", match.group())


def generator_for(dialect: str) -> Callable[[exp.Expr], str]:
    if dialect not in _DIALECTS:
        raise ValueError(f"no SQL printer for {dialect!r}: use one of {', '.join(_DIALECTS)}")
    printer = _DIALECTS[dialect]
    quoted = _QUOTED[dialect]

    def generate(tree: exp.Expr) -> str:
        if dialect == "sqlite":
            text = printer.generate(sqlite_tree(tree), copy=False, comments=False)
        elif dialect == "postgres":
            text = printer.generate(postgres_tree(tree), copy=False, comments=False)
        else:
            text = printer.generate(tree, comments=False)
        return quoted.sub(_escape_colons, text) if ":" in text else text

    return generate
