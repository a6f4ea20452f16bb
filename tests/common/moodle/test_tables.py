"""The Moodle tables built from schema.json, and what MoodleSource reads from a site."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    insert,
    inspect,
    select,
)
from sqlalchemy.dialects import mysql, postgresql

from common.db import make_engine
from common.moodle import MoodleSource, MoodleTables, SiteFeatures, moodle_metadata
from common.moodle.tables import moodle_schema, recreate_site_tables
from tests.factories.moodle import MoodleFactory

SCHEMA = moodle_schema()["tables"]


def expected_type_class(column: dict) -> type:
    xmldb, length = column["type"], column.get("length")
    if xmldb == "int":
        if length > 9:
            return BigInteger
        return Integer if length >= 5 else SmallInteger
    return {"number": Numeric, "float": Float, "char": String, "text": Text}.get(xmldb, LargeBinary)


def test_schema_has_all_54_tables_under_the_prefix():
    metadata = moodle_metadata("x_")

    assert len(SCHEMA) == 54  # 53 + sessions (issue 10)
    assert sorted(metadata.tables) == sorted(f"x_{name}" for name in SCHEMA)
    assert moodle_metadata("x_") is metadata


@pytest.mark.parametrize("table", SCHEMA)
def test_columns_match_schema(table):
    defined = MoodleTables()[table]

    assert [c.name for c in defined.columns] == [c["name"] for c in SCHEMA[table]["columns"]]
    for column in SCHEMA[table]["columns"]:
        name, typ = column["name"], defined.c[column["name"]].type
        assert type(typ) is expected_type_class(column), name
        assert defined.c[name].nullable is not column["notnull"], name
        if column["type"] == "char":
            assert typ.length == column["length"], name
        if column["type"] == "number":
            assert (typ.precision, typ.scale) == (column["length"], column["decimals"]), name
        # MariaDB gets exactly the type Moodle's DDL generator writes.
        assert typ.compile(dialect=mysql.dialect()).replace(" ", "") == column["mysql_type"], name
        # PostgreSQL too (BIGSERIAL is a BIGINT column that SERIAL's DDL gives a sequence).
        on_postgres = typ.compile(dialect=postgresql.dialect()).replace(" ", "")
        expected_pg = column["postgres_type"].replace("BIGSERIAL", "BIGINT").replace(" ", "")
        assert on_postgres == expected_pg, name
        assert _default_text(defined.c[name]) == _expected_default(column), name


def _default_text(column) -> str | None:
    if column.server_default is None:
        return None
    return str(getattr(column.server_default.arg, "text", column.server_default.arg))


def _expected_default(column: dict) -> str | None:
    if column["sequence"] or column["type"] in ("text", "binary"):
        return None
    default = column["default"]
    if default is None:
        return column.get("physical_default")
    return str(default) if column["type"] == "char" else repr(default)


def test_indexes_are_the_key_and_explicit_indexes_of_the_schema():
    tables = MoodleTables()
    for name, spec in SCHEMA.items():
        defined = {(tuple(c.name for c in i.columns), i.unique) for i in tables[name].indexes}
        expected = {(tuple(i["columns"]), i["unique"]) for i in spec["indexes"]}
        assert defined == expected, name
    names = [i.name for table in tables.metadata.tables.values() for i in table.indexes]
    assert len(names) == len(set(names))
    assert all(name.startswith("mdl_") and len(name) <= 30 for name in names)
    assert "mdl_user_mneuse_uix" in names


def test_company_colours_default_to_the_string_null():
    company = MoodleTables().company

    assert company.c.maincolor.server_default.arg == "null"


def test_tables_by_moodle_name():
    tables = MoodleTables("abc_")

    assert tables.user.name == "abc_user"
    assert tables["course_completions"].name == "abc_course_completions"
    assert tables.logstore_standard_log.c.eventname is not None
    assert "company" in tables
    with pytest.raises(AttributeError):
        _ = tables.no_such_table
    with pytest.raises(KeyError):
        tables["no_such_table"]


def test_id_autoincrements_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ids.db'}")
    config = MoodleTables().config
    with engine.begin() as connection:
        recreate_site_tables(connection, iomad=False)
        connection.execute(
            insert(config), [{"name": "a", "value": "1"}, {"name": "b", "value": ""}]
        )
        ids = connection.scalars(select(config.c.id).order_by(config.c.id)).all()
    engine.dispose()

    assert ids == [1, 2]


def test_created_tables_have_every_column_and_index(moodle_databases):
    url, prefix = moodle_databases.new()
    engine = make_engine(url)
    with engine.begin() as connection:
        recreate_site_tables(connection, prefix, iomad=True, scorm_layout="track")
        inspector = inspect(connection)
        present = {name for name in inspector.get_table_names() if name.startswith(prefix)}
        for name in (table.removeprefix(prefix) for table in present):
            columns = {c["name"]: c for c in inspector.get_columns(prefix + name)}
            for column in SCHEMA[name]["columns"]:
                reflected = columns[column["name"]]
                assert reflected["nullable"] is not column["notnull"]
                physical = reflected["type"].compile(dialect=engine.dialect)
                if engine.dialect.name == "postgresql":
                    expected = column["postgres_type"]
                    if expected == "BIGSERIAL":  # reflected as what it is: a BIGINT from nextval
                        expected = "BIGINT"
                        assert "nextval" in reflected["default"], column["name"]
                    assert physical.replace(" ", "") == expected.replace(" ", ""), column["name"]
                elif engine.dialect.name != "sqlite":
                    assert physical.replace(" ", "") == column["mysql_type"], column["name"]
            indexed = {tuple(i["column_names"]) for i in inspector.get_indexes(prefix + name)}
            assert indexed == {tuple(i["columns"]) for i in SCHEMA[name]["indexes"]}
    engine.dispose()

    assert f"{prefix}scorm_attempt" not in present
    assert f"{prefix}scorm_scoes_track" in present


@pytest.mark.parametrize(
    ("shape", "features"),
    [
        ({"iomad": True, "scorm_layout": "attempt"}, SiteFeatures(True, "attempt", True)),
        ({"iomad": True, "scorm_layout": "track"}, SiteFeatures(True, "track", True)),
        ({"iomad": False, "scorm_layout": "attempt"}, SiteFeatures(False, "attempt", True)),
    ],
)
def test_features_come_from_the_tables_present(moodle_databases, shape, features):
    url, prefix = moodle_databases.new()
    factory = MoodleFactory(make_engine(url), prefix, **shape)
    source = MoodleSource(url, prefix)

    assert source.features() == features
    source.dispose()
    factory.engine.dispose()


def test_an_empty_database_has_no_features(tmp_path):
    source = MoodleSource(f"sqlite:///{tmp_path / 'empty.db'}")

    assert source.features() == SiteFeatures(False, None, False)
    source.dispose()


def test_site_admins_in_stored_order(tmp_path):
    url = f"sqlite:///{tmp_path / 'admins.db'}"
    factory = MoodleFactory(make_engine(url), iomad=False)
    second_admin = factory.user()
    source = MoodleSource(url)
    fresh = source.site_admin_ids()

    factory.site_admins([second_admin, 2])

    assert fresh == (2,)
    assert source.site_admin_ids() == (second_admin, 2)
    source.dispose()
    factory.engine.dispose()


def test_source_engine_is_read_only(tmp_path):
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    MoodleFactory(make_engine(url), iomad=False).engine.dispose()
    source = MoodleSource(url)

    with pytest.raises(Exception, match="readonly|read-only|query_only"):
        with source.engine.begin() as connection:
            connection.execute(insert(source.tables.config).values(name="x", value="y"))
    source.dispose()
