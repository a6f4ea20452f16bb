"""Printing a checked query for the database that runs it (MariaDB/MySQL, SQLite, PostgreSQL).

The tree was parsed as MySQL and sqlglot transpiles it. SQLite (the demo site) lacks the MySQL
date functions Moodle reports lean on, so its printer is taught FROM_UNIXTIME, UNIX_TIMESTAMP,
NOW, YEAR … SECOND, EXTRACT, LEFT/RIGHT, date arithmetic with INTERVAL and TIMESTAMPDIFF in
seconds to days; other MySQL-only functions (LPAD, STDDEV, REGEXP …) print as they are and need
MariaDB/MySQL. A colon that would start `:name` inside quoted text is escaped as `\\:`, since
SQLAlchemy's text() would take it for a bind.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.dialects.postgres import Postgres
from sqlglot.dialects.sqlite import SQLite
from sqlglot.generators.sqlite import SQLiteGenerator

# strftime pattern and the MySQL function it stands for
_PARTS = {
    exp.Year: "%Y",
    exp.Month: "%m",
    exp.Day: "%d",
    exp.DayOfMonth: "%d",
    exp.DayOfYear: "%j",
    exp.Hour: "%H",
    exp.Minute: "%M",
    exp.Second: "%S",
}
_EXTRACT = {"YEAR": "%Y", "MONTH": "%m", "DAY": "%d", "HOUR": "%H", "MINUTE": "%M", "SECOND": "%S"}
_ANONYMOUS_PARTS = {"HOUR": "%H", "MINUTE": "%M", "SECOND": "%S", "WEEKDAY": None}
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


def _strftime(gen: SQLiteGenerator, pattern: str, value: exp.Expr) -> str:
    return f"CAST(STRFTIME('{pattern}', {gen.sql(value)}) AS INTEGER)"


def _part(gen: SQLiteGenerator, node: exp.Func) -> str:
    value = node.this
    if isinstance(value, exp.TsOrDsToDate | exp.TsOrDsToTimestamp):
        value = value.this
    return _strftime(gen, _PARTS[type(node)], value)


def _unix_to_time(gen: SQLiteGenerator, node: exp.Func) -> str:
    value = gen.sql(node, "this")
    fmt = node.args.get("format")
    if isinstance(fmt, exp.Literal):
        converted = MySQL.format_time(fmt)
        return f"STRFTIME({gen.sql(converted)}, {value}, 'unixepoch')"
    return f"DATETIME({value}, 'unixepoch')"


def _shift(gen: SQLiteGenerator, value: exp.Expr, amount: exp.Expr, unit: str, sign: str) -> str:
    name, times = _UNITS.get(unit.upper(), (unit.lower(), 1))
    if isinstance(amount, exp.Literal):
        number = amount.name
        if re.fullmatch(r"-?\d+(\.\d+)?", number):
            shifted = float(number) * times
            text = f"{shifted:g}"
            signed = text if sign == "+" else (text[1:] if text.startswith("-") else "-" + text)
            if not signed.startswith("-"):
                signed = "+" + signed
            return f"DATETIME({gen.sql(value)}, '{signed} {name}')"
    scaled = f"({gen.sql(amount)}) * {times}" if times != 1 else f"({gen.sql(amount)})"
    return f"DATETIME({gen.sql(value)}, '{sign}' || {scaled} || ' {name}')"


def _date_add(gen: SQLiteGenerator, node: exp.Func) -> str:
    sign = "-" if isinstance(node, exp.DateSub) else "+"
    unit = node.args.get("unit")
    return _shift(gen, node.this, node.expression, unit.name if unit else "DAY", sign)


def _arith(gen: SQLiteGenerator, node: exp.Binary) -> str:
    operator = "+" if isinstance(node, exp.Add) else "-"
    left, right = node.this, node.expression
    if isinstance(right, exp.Interval):
        unit = right.args.get("unit")
        return _shift(gen, left, right.this, unit.name if unit else "DAY", operator)
    if isinstance(left, exp.Interval) and operator == "+":
        unit = left.args.get("unit")
        return _shift(gen, right, left.this, unit.name if unit else "DAY", "+")
    return f"{gen.sql(left)} {operator} {gen.sql(right)}"


def _timestampdiff(gen: SQLiteGenerator, node: exp.Func) -> str:
    unit = node.args.get("unit")
    seconds = _SECONDS.get(unit.name.upper() if unit else "DAY")
    later, earlier = gen.sql(node, "this"), gen.sql(node, "expression")
    if seconds is None:
        months = f"((STRFTIME('%Y', {later}) - STRFTIME('%Y', {earlier})) * 12 + "
        months += f"STRFTIME('%m', {later}) - STRFTIME('%m', {earlier}))"
        return months if unit and unit.name.upper() == "MONTH" else f"({months} / 12)"
    diff = f"(STRFTIME('%s', {later}) - STRFTIME('%s', {earlier}))"
    return diff if seconds == 1 else f"({diff} / {seconds})"


def _extract(gen: SQLiteGenerator, node: exp.Func) -> str:
    part = node.this.name.upper()
    pattern = _EXTRACT.get(part)
    if pattern is None:
        return gen.function_fallback_sql(node)
    return _strftime(gen, pattern, node.expression)


def _day_of_week(gen: SQLiteGenerator, node: exp.Func) -> str:
    value = node.this.this if isinstance(node.this, exp.TsOrDsToDate) else node.this
    return f"(CAST(STRFTIME('%w', {gen.sql(value)}) AS INTEGER) + 1)"


def _quarter(gen: SQLiteGenerator, node: exp.Func) -> str:
    return f"((CAST(STRFTIME('%m', {gen.sql(node, 'this')}) AS INTEGER) + 2) / 3)"


def _substr_left(gen: SQLiteGenerator, node: exp.Func) -> str:
    return f"SUBSTR({gen.sql(node, 'this')}, 1, {gen.sql(node, 'expression')})"


def _substr_right(gen: SQLiteGenerator, node: exp.Func) -> str:
    return f"SUBSTR({gen.sql(node, 'this')}, -({gen.sql(node, 'expression')}))"


class ReportSQLiteGenerator(SQLiteGenerator):
    TRANSFORMS = {
        **SQLiteGenerator.TRANSFORMS,
        **dict.fromkeys(_PARTS, _part),
        exp.UnixToTime: _unix_to_time,
        exp.DateAdd: _date_add,
        exp.DateSub: _date_add,
        exp.Add: _arith,
        exp.Sub: _arith,
        exp.TimestampDiff: _timestampdiff,
        exp.Extract: _extract,
        exp.DayOfWeek: _day_of_week,
        exp.Quarter: _quarter,
        exp.Left: _substr_left,
        exp.Right: _substr_right,
    }

    def anonymous_sql(self, expression: exp.Anonymous) -> str:
        name = expression.name.upper()
        args = expression.expressions
        if name == "UNIX_TIMESTAMP":
            value = self.sql(args[0]) if args else "'now'"
            return f"CAST(STRFTIME('%s', {value}) AS INTEGER)"
        if name == "NOW":
            return "DATETIME('now')"
        if name in ("HOUR", "MINUTE", "SECOND") and len(args) == 1:
            return _strftime(self, _EXTRACT[name], args[0])
        if name == "WEEKDAY" and len(args) == 1:
            return f"((CAST(STRFTIME('%w', {self.sql(args[0])}) AS INTEGER) + 6) % 7)"
        return super().anonymous_sql(expression)


class ReportSQLite(SQLite):
    Generator = ReportSQLiteGenerator


_DIALECTS = {"mysql": MySQL(), "sqlite": ReportSQLite(), "postgres": Postgres()}

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
        text = printer.generate(tree, comments=False)
        return quoted.sub(_escape_colons, text) if ":" in text else text

    return generate
