"""Printing a checked query for the database that runs it (MariaDB/MySQL, SQLite, PostgreSQL).

The tree was parsed as MySQL; sqlglot transpiles it. SQLite lacks a few MySQL functions Moodle
reports lean on (FROM_UNIXTIME, UNIX_TIMESTAMP …), so its generator is taught them here. Colons
inside quoted text are escaped as `\\:` because SQLAlchemy's text() would read `'12:30'` as a bind.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.dialects.postgres import Postgres
from sqlglot.dialects.sqlite import SQLite
from sqlglot.generators.sqlite import SQLiteGenerator


class ReportSQLiteGenerator(SQLiteGenerator):
    TRANSFORMS = {
        **SQLiteGenerator.TRANSFORMS,
    }


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
