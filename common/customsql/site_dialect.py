"""Which SQL dialect a Moodle site's database speaks, for the validator and the printer.

`printed_dialect` names how a checked query is printed to run there ("mysql", "sqlite",
"postgres"); `written_dialect` names the dialect its custom SQL is written and validated in:
PostgreSQL's own for a PostgreSQL site, MySQL's for MariaDB, MySQL and the SQLite demo site
(whose authors write the MySQL that Moodle reports are usually written in).
"""

from __future__ import annotations

from typing import Protocol

from common.errors import FieldError


class _Site(Protocol):
    @property
    def engine(self) -> object: ...


def printed_dialect(source: _Site) -> str:
    name = getattr(getattr(source.engine, "dialect", None), "name", "")
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name in ("sqlite", "postgresql"):
        return "sqlite" if name == "sqlite" else "postgres"
    raise FieldError("sql", f"custom SQL runs on MariaDB, MySQL, PostgreSQL or SQLite, not {name}")


def written_dialect(source: _Site) -> str:
    return "postgres" if printed_dialect(source) == "postgres" else "mysql"


def report_dialect(source: _Site, kind: str) -> str:
    """The dialect a stored report's SQL is in: the builder always compiles to MySQL (printed
    for the site's database when run); hand-written SQL is in the site's own."""
    return "mysql" if kind == "builder" else written_dialect(source)
