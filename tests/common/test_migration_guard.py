"""The migrate step's guard on real databases, with revisions written to a copy of the scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from common.db import make_engine
from common.migrate import MIGRATIONS_DIR, alembic_config, current_heads, upgrade
from common.migration_guard import IncompatibleMigration, guarded_upgrade
from tests.support import REPO

HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
NEXT, AFTER = "t901", "t902"  # the revisions a test adds on top of the real ones
TABLE = "manireports_processed_msgs"  # consumer, msg_id, processed_at (0001)


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """The project's migrations copied, so a test may add revisions of its own."""
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture
def migrated(db_url: str, scripts: Path) -> str:
    command.upgrade(alembic_config(db_url, scripts), "head")
    assert current_heads(db_url) == [HEAD]
    return db_url


def add_revision(scripts: Path, revision: str, body: str, *, down: str = HEAD,
                 contract: bool = False) -> None:  # fmt: skip
    marker = "contract = True\n" if contract else ""
    source = (
        f'"""test revision {revision}"""\n\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
        f'revision = "{revision}"\ndown_revision = "{down}"\nbranch_labels = None\n'
        f"depends_on = None\n{marker}\n\ndef upgrade() -> None:\n"
        + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
        + "\n\ndef downgrade() -> None:\n    pass\n"
    )
    (scripts / "versions" / f"{revision}_test.py").write_text(source)


def columns(url: str, table: str = TABLE) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


BREAKING = {
    "batch drop_column": (
        f'with op.batch_alter_table("{TABLE}") as batch_op:\n    batch_op.drop_column("msg_id")',
        f"drop_column {TABLE}.msg_id",
    ),
    "drop_table": (f'op.drop_table("{TABLE}")', f"drop_table {TABLE}"),
    "rename_table": (f'op.rename_table("{TABLE}", "renamed")', f"rename_table {TABLE} to renamed"),
    "rename column": (
        f'op.alter_column("{TABLE}", "consumer", new_column_name="worker",'
        " existing_type=sa.String(64))",
        f"alter_column {TABLE}.consumer: renamed to worker",
    ),
    "add NOT NULL without default": (
        f'op.add_column("{TABLE}", sa.Column("tenant", sa.Integer(), nullable=False))',
        f"add_column {TABLE}.tenant NOT NULL without a server default",
    ),
    "tighten to NOT NULL": (
        f'op.alter_column("{TABLE}", "msg_id", nullable=False, existing_type=sa.String(128))',
        f"alter_column {TABLE}.msg_id: NOT NULL without a server default",
    ),
    "raw DROP COLUMN": (
        f'op.execute("ALTER TABLE {TABLE} DROP COLUMN msg_id")',
        "drops or renames in raw SQL",
    ),
}


@pytest.mark.parametrize("case", list(BREAKING))
def test_a_breaking_revision_is_refused_naming_it_and_its_operation_and_nothing_runs(
    case: str, scripts: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    command.upgrade(alembic_config(url, scripts), "head")
    add_revision(scripts, NEXT, "op.create_table('guard_new', sa.Column('id', sa.Integer(),"
                 " primary_key=True))")  # fmt: skip
    body, expected = BREAKING[case]
    add_revision(scripts, AFTER, body, down=NEXT)
    with pytest.raises(IncompatibleMigration) as refused:
        guarded_upgrade(url, script_location=scripts)
    message = str(refused.value)
    assert f"revision {AFTER} ({AFTER}_test.py)" in message and expected in message
    assert "contract = True" in message and "nothing was applied" in message
    # Not even the harmless revision before it ran: the release is applied whole or not at all.
    assert current_heads(url) == [HEAD]
    assert "guard_new" not in tables(url)
    assert columns(url) == {"id", "consumer", "msg_id", "processed_at"}
    # --allow-contract does not let an unmarked revision through.
    with pytest.raises(IncompatibleMigration):
        guarded_upgrade(url, allow_contract=True, script_location=scripts)


def test_expand_revisions_pass_the_check_and_are_applied(migrated: str, scripts: Path) -> None:
    add_revision(scripts, NEXT, f"""
        op.create_table("guard_new", sa.Column("id", sa.Integer(), primary_key=True))
        op.add_column("{TABLE}", sa.Column("note", sa.String(20), nullable=True))
        op.add_column("{TABLE}", sa.Column("tries", sa.Integer(), nullable=False,
                                            server_default="0"))
        op.create_index("ix_guard_note", "{TABLE}", ["note"])
        op.execute(sa.text("UPDATE {TABLE} SET note = 'x' WHERE note IS NULL"))
    """)  # fmt: skip
    assert guarded_upgrade(migrated, script_location=scripts) == []
    assert current_heads(migrated) == [NEXT]
    assert {"note", "tries"} <= columns(migrated)
    assert "guard_new" in tables(migrated)


def test_a_contract_step_needs_the_flag_then_runs(migrated: str, scripts: Path) -> None:
    # Release 1 (expand) added `note`; release 2 no longer uses it; release 3 drops it.
    add_revision(scripts, NEXT, f'op.add_column("{TABLE}", sa.Column("note", sa.String(20)))')
    guarded_upgrade(migrated, script_location=scripts)
    add_revision(scripts, AFTER, f"""
        with op.batch_alter_table("{TABLE}") as batch_op:
            batch_op.drop_column("note")
    """, down=NEXT, contract=True)  # fmt: skip
    with pytest.raises(IncompatibleMigration) as refused:
        guarded_upgrade(migrated, script_location=scripts)
    assert f"revision {AFTER}" in str(refused.value) and "[marked contract]" in str(refused.value)
    assert "--allow-contract" in str(refused.value)
    assert "note" in columns(migrated) and current_heads(migrated) == [NEXT]

    applied = guarded_upgrade(migrated, allow_contract=True, script_location=scripts)
    assert [b.operation for b in applied] == [f"drop_column {TABLE}.note"]
    assert current_heads(migrated) == [AFTER]
    assert "note" not in columns(migrated)


def test_a_contract_step_beside_an_unmarked_breaking_one_is_refused_even_with_the_flag(
    tmp_path: Path, scripts: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    command.upgrade(alembic_config(url, scripts), "head")
    add_revision(scripts, NEXT, f'op.drop_table("{TABLE}")', contract=True)
    add_revision(scripts, AFTER, 'op.rename_table("manireports_web_sessions", "s2")', down=NEXT)
    with pytest.raises(IncompatibleMigration) as refused:
        guarded_upgrade(url, allow_contract=True, script_location=scripts)
    assert f"revision {AFTER}" in str(refused.value)
    assert f"revision {NEXT}" not in str(refused.value)
    assert current_heads(url) == [HEAD] and TABLE in tables(url)


def test_a_new_database_has_no_running_release_to_protect(tmp_path: Path, scripts: Path) -> None:
    add_revision(scripts, NEXT, f'op.drop_table("{TABLE}")')
    url = f"sqlite:///{tmp_path / 'app.db'}"
    guarded_upgrade(url, script_location=scripts)
    assert current_heads(url) == [NEXT] and TABLE not in tables(url)


def test_the_project_revisions_are_all_expand_steps(tmp_path: Path) -> None:
    """Every shipped revision passes the check from the first one on (a database at 0001)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url, "0001")
    assert guarded_upgrade(url) == []
    assert current_heads(url) == [HEAD]


def test_the_cli_checks_then_upgrades_with_or_without_the_flag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url, "0013")
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "SECRET_KEY": "s" * 40,
           "MANIREPORTS_INSTANCE": str(tmp_path / "instance")}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "cli.main", "db", "upgrade"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "app database is up to date" in done.stdout
    assert current_heads(url) == [HEAD]
    flag = subprocess.run(
        [sys.executable, "-m", "cli.main", "db", "upgrade", "--allow-contract"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert flag.returncode == 0, flag.stderr
