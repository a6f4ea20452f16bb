from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import common.models  # noqa: F401
from common.db import make_engine
from common.migrate import current_heads, upgrade
from common.models.base import Base


def test_upgrade_creates_every_model_table_and_matches_the_models(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            drift = compare_metadata(context, Base.metadata)
        assert drift == [], f"models and migrations disagree: {drift}"
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(db_url):
    upgrade(db_url)
    heads = current_heads(db_url)
    upgrade(db_url)
    assert current_heads(db_url) == heads != []


def test_indexes_on_lookup_columns(app_db_url):
    engine = make_engine(app_db_url)
    try:
        inspector = inspect(engine)
        for table in Base.metadata.tables.values():
            indexed = {
                col for ix in inspector.get_indexes(table.name) for col in ix["column_names"]
            } | {
                col
                for uq in inspector.get_unique_constraints(table.name)
                for col in uq["column_names"][:1]
            }
            for column in ("userid", "courseid", "date", "processed_at"):
                if column in table.c:
                    assert column in indexed, f"{table.name}.{column} has no index"
    finally:
        engine.dispose()
