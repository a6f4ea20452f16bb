"""SQLAlchemy tables for the Moodle/IOMAD database, built from `schema.json` beside this file.

Column names, types, NOT NULL and server defaults follow Moodle's own DDL generator
(lib/ddl/mysql_sql_generator.php), so a table created here looks like the one a real site has,
and a query written against these tables runs unchanged on a real site. The table prefix is
configurable (`mdl_` by default); tables are looked up by their unprefixed Moodle name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.type_api import TypeEngine

SCHEMA_PATH = Path(__file__).with_name("schema.json")
DEFAULT_PREFIX = "mdl_"

ScormLayout = Literal["track", "attempt"]

# mod_scorm's 4.3 upgrade replaced the one track table by three (NOTES.md §3).
SCORM_LAYOUT_TABLES: dict[ScormLayout, tuple[str, ...]] = {
    "track": ("scorm_scoes_track",),
    "attempt": ("scorm_attempt", "scorm_element", "scorm_scoes_value"),
}
IOMAD_COMPONENTS = ("local_iomad", "local_iomad_track", "local_email")

# Moodle's sql_generator caps object names at 30 characters.
INDEX_NAME_MAX = 30
_MYSQL = ("mysql", "mariadb")


@cache
def moodle_schema() -> dict[str, Any]:
    """The parsed schema.json: {"tables": {name: {"columns": [...], "indexes": [...]}}, ...}."""
    with SCHEMA_PATH.open(encoding="utf-8") as schema_file:
        schema: dict[str, Any] = json.load(schema_file)
    return schema


def table_names() -> tuple[str, ...]:
    """Every Moodle table name the schema knows, unprefixed, in schema order."""
    return tuple(moodle_schema()["tables"])


def iomad_table_names() -> frozenset[str]:
    tables = moodle_schema()["tables"]
    return frozenset(name for name, spec in tables.items() if spec["component"] in IOMAD_COMPONENTS)


def column_type(spec: dict[str, Any]) -> TypeEngine[Any]:
    """The SQLAlchemy type for one schema.json column, with MariaDB's exact physical type; the
    generic types are already PostgreSQL's (`postgres_type`: BIGSERIAL, SMALLINT, TEXT, …)."""
    xmldb = spec["type"]
    length: int = spec.get("length") or 0
    if xmldb == "int":
        if spec["sequence"]:
            # SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
            return (
                BigInteger()
                .with_variant(sqlite.INTEGER(), "sqlite")
                .with_variant(mysql.BIGINT(display_width=length), *_MYSQL)
            )
        if length > 9:
            return BigInteger().with_variant(mysql.BIGINT(display_width=length), *_MYSQL)
        if length >= 7:
            return Integer().with_variant(mysql.INTEGER(display_width=length), *_MYSQL)
        if length >= 5:
            return Integer().with_variant(mysql.MEDIUMINT(display_width=length), *_MYSQL)
        if length >= 3:
            return SmallInteger().with_variant(mysql.SMALLINT(display_width=length), *_MYSQL)
        return SmallInteger().with_variant(mysql.TINYINT(display_width=length), *_MYSQL)
    if xmldb == "number":
        decimals = spec["decimals"]
        return Numeric(length, decimals).with_variant(mysql.DECIMAL(length, decimals), *_MYSQL)
    if xmldb == "float":
        decimals = spec.get("decimals")
        physical = mysql.FLOAT() if decimals is not None and decimals < 6 else mysql.DOUBLE()
        on_postgres: TypeEngine[Any] = (
            postgresql.REAL()
            if isinstance(physical, mysql.FLOAT)
            else postgresql.DOUBLE_PRECISION()
        )
        return Float().with_variant(physical, *_MYSQL).with_variant(on_postgres, "postgresql")
    if xmldb == "char":
        return String(length)
    if xmldb == "text":
        return Text().with_variant(mysql.LONGTEXT(), *_MYSQL)
    if xmldb == "binary":
        return LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)
    raise ValueError(f"unknown XMLDB type {xmldb!r} for column {spec['name']!r}")


def server_default(spec: dict[str, Any]) -> Any:
    """The DEFAULT clause Moodle's DDL emits, or None for no DEFAULT."""
    if spec["type"] in ("text", "binary") or spec["sequence"]:
        return None
    default = spec["default"]
    if default is None:
        # NOT NULL char without a default gets DEFAULT '' (marked physical_default).
        return spec.get("physical_default")
    if spec["type"] == "char":
        return str(default)
    # A bare number, not a quoted string, so SQLite stores an INTEGER/REAL default.
    return text(repr(default))


def index_name(prefix: str, table: str, columns: list[str], unique: bool, used: set[str]) -> str:
    """Moodle's physical index name (`mdl_user_mneuse_uix`), numbered on a clash like
    sql_generator::getNameForObject(); `used` collects the names already given."""
    suffix = "uix" if unique else "ix"
    stem = prefix + "".join(part[:4] for part in table.split("_"))
    stem += "_" + "".join(column[:3] for column in columns)
    room = INDEX_NAME_MAX - len(suffix) - 1
    name = f"{stem[:room]}_{suffix}"
    counter = 1
    while name in used:
        name = f"{stem[: room - len(str(counter))]}{counter}_{suffix}"
        counter += 1
    used.add(name)
    return name


@cache
def moodle_metadata(prefix: str = DEFAULT_PREFIX) -> MetaData:
    """All Moodle tables of the schema, named `<prefix><table>`; cached per prefix."""
    metadata = MetaData()
    used_index_names: set[str] = set()
    for name, spec in moodle_schema()["tables"].items():
        columns = [
            Column(
                column["name"],
                column_type(column),
                primary_key=column["name"] in spec["primary"],
                autoincrement=column["sequence"],
                nullable=not column["notnull"],
                server_default=server_default(column),
            )
            for column in spec["columns"]
        ]
        table = Table(
            prefix + name,
            metadata,
            *columns,
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
            mysql_collate="utf8mb4_unicode_ci",
            mysql_row_format="DYNAMIC",
            # Its Moodle name without the prefix: how tenant scoping finds its columns.
            info={"moodle_table": name},
        )
        # Moodle creates no FOREIGN KEY/UNIQUE constraints, only indexes (NOTES.md §2).
        for index in spec["indexes"]:
            Index(
                index_name(prefix, name, index["columns"], index["unique"], used_index_names),
                *(table.c[column] for column in index["columns"]),
                unique=index["unique"],
            )
    return metadata


class MoodleTables:
    """Tables of one site by unprefixed Moodle name: `t.user`, `t["course_completions"]`."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.metadata = moodle_metadata(prefix)

    def __getitem__(self, name: str) -> Table:
        try:
            return self.metadata.tables[self.prefix + name]
        except KeyError:
            raise KeyError(f"no Moodle table {name!r} in schema.json") from None

    def __getattr__(self, name: str) -> Table:
        # Only table names: never recurse for the instance's own attributes (e.g. on copy).
        if name.startswith("_") or name in ("prefix", "metadata"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as missing:
            raise AttributeError(str(missing)) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.prefix + name in self.metadata.tables


def site_tables(
    prefix: str = DEFAULT_PREFIX, *, iomad: bool = True, scorm_layout: ScormLayout = "attempt"
) -> list[Table]:
    """The tables a site of this shape has: one SCORM layout, IOMAD's tables or none."""
    left_out = set(SCORM_LAYOUT_TABLES["track" if scorm_layout == "attempt" else "attempt"])
    if not iomad:
        left_out |= iomad_table_names()
    tables = MoodleTables(prefix)
    return [tables[name] for name in table_names() if name not in left_out]


def recreate_site_tables(
    connection: Connection,
    prefix: str = DEFAULT_PREFIX,
    *,
    iomad: bool = True,
    scorm_layout: ScormLayout = "attempt",
    with_indexes: bool = True,
) -> list[Table]:
    """Drop every Moodle table of this prefix, then create the ones of this site shape.

    `with_indexes=False` leaves the indexes for `create_indexes()` after a bulk load, which
    builds each index once by sorting instead of updating it row by row.
    """
    metadata = moodle_metadata(prefix)
    metadata.drop_all(connection, checkfirst=True)
    tables = site_tables(prefix, iomad=iomad, scorm_layout=scorm_layout)
    for table in tables:
        if with_indexes:
            table.create(connection)
        else:
            connection.execute(CreateTable(table))
    return tables


def create_indexes(connection: Connection, tables: Iterable[Table]) -> None:
    for table in tables:
        for index in sorted(table.indexes, key=lambda index: index.name or ""):
            index.create(connection)


def sync_id_sequences(connection: Connection, tables: Iterable[Table]) -> None:
    """On PostgreSQL, move each table's id sequence past the ids inserted explicitly (a bulk
    load, fixed ids such as the site course), as Moodle's own restore does; the next row
    inserted without an id would otherwise collide. Nothing to do elsewhere: MariaDB's
    AUTO_INCREMENT and SQLite's rowid follow the largest id by themselves."""
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        if "id" not in table.c or not table.c.id.autoincrement:
            continue
        name = connection.dialect.identifier_preparer.quote(table.name)
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:table, 'id'), "  # noqa: S608 - quoted name
                f"COALESCE(MAX(id), 0) + 1, false) FROM {name}"
            ),
            {"table": name},
        )
