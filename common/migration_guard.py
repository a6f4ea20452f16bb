"""The migrate step's guard: refuse a pending revision that would break the running release.

During a rolling update the previous release keeps serving while the migration runs and until
every pod is replaced, so each migration must be *expand* only: add tables, nullable columns,
columns with a server default, indexes. A *contract* step (drop or rename a table or column, or
make a column NOT NULL without a default) breaks the old code still running; it ships in a
later release, once no running code uses what it removes, as a revision marked
`contract = True`, applied with `manireports db upgrade --allow-contract` (README "Deploying":
the expand/contract rule).

The pending revisions are not run to be judged: each one's `upgrade()` is called with `op`
bound to a recorder that keeps the Alembic operations it asks for (batch blocks included) and
executes nothing. Raw SQL in `op.execute` is judged by its text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from alembic import command
from alembic.operations import BatchOperations, Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy.sql.elements import TextClause

from common.migrate import MIGRATIONS_DIR, alembic_config, current_heads

CONTRACT_ATTRIBUTE = "contract"
_RAW_BREAKING = re.compile(
    r"\b(DROP\s+(TABLE|COLUMN)|RENAME\s+(TO|COLUMN|TABLE)|CHANGE\s+(COLUMN\s+)?\w+\s+\w+)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Breaking:
    """One operation of a revision that the release still running would not survive."""

    revision: str
    path: str
    operation: str
    contract: bool  # the revision says it is a contract step

    def describe(self) -> str:
        return f"revision {self.revision} ({Path(self.path).name}): {self.operation}"


class IncompatibleMigration(Exception):
    """Pending revisions would break the running release; nothing was applied."""

    def __init__(self, refused: list[Breaking]):
        self.refused = refused
        lines = [
            f"  - {b.describe()}" + (" [marked contract]" if b.contract else "") for b in refused
        ]
        advice = []
        if any(not b.contract for b in refused):
            advice.append(
                "These are not backwards compatible with the release still running. Expand "
                "first (add the new table or column, nullable or with a server default, and "
                "write both); drop, rename or tighten in a later release, in a revision marked "
                "`contract = True`."
            )
        if any(b.contract for b in refused):
            advice.append(
                "Contract steps run only with `manireports db upgrade --allow-contract`, once no "
                "running release uses what they remove."
            )
        super().__init__("migration refused; nothing was applied:\n" + "\n".join(lines + advice))


def breaking_operation(operation: alembic_ops.MigrateOperation) -> str | None:
    """What an operation would break for code written before it, or None."""
    if isinstance(operation, alembic_ops.DropColumnOp):
        return f"drop_column {operation.table_name}.{operation.column_name}"
    if isinstance(operation, alembic_ops.DropTableOp):
        return f"drop_table {operation.table_name}"
    if isinstance(operation, alembic_ops.RenameTableOp):
        return f"rename_table {operation.table_name} to {operation.new_table_name}"
    if isinstance(operation, alembic_ops.AddColumnOp):
        column = operation.column
        if not column.nullable and column.server_default is None and not column.primary_key:
            return (
                f"add_column {operation.table_name}.{column.name} NOT NULL without a server "
                "default (the running release inserts rows without it)"
            )
        return None
    if isinstance(operation, alembic_ops.AlterColumnOp):
        where = f"{operation.table_name}.{operation.column_name}"
        if operation.modify_name:
            return f"alter_column {where}: renamed to {operation.modify_name}"
        if operation.modify_nullable is False and not _has_default(operation):
            return f"alter_column {where}: NOT NULL without a server default"
        return None
    if isinstance(operation, alembic_ops.ExecuteSQLOp):
        text = _sql_text(operation.sqltext)
        if text and _RAW_BREAKING.search(text):
            return f"execute {' '.join(text.split())[:120]!r}: drops or renames in raw SQL"
    return None


def _has_default(operation: alembic_ops.AlterColumnOp) -> bool:
    new = operation.modify_server_default
    if new is not False:  # False: the default is left as it is
        return new is not None
    return operation.existing_server_default not in (False, None)


def _sql_text(sqltext: Any) -> str | None:
    if isinstance(sqltext, str):
        return sqltext
    if isinstance(sqltext, TextClause):
        return sqltext.text
    return None  # a Core statement (UPDATE ... for a backfill): data, not schema


def _recording(
    operations: Operations | BatchOperations, found: list[alembic_ops.MigrateOperation]
) -> None:
    """Make `operations` keep each operation it is asked for and run none."""

    def keep(operation: alembic_ops.MigrateOperation) -> None:
        found.append(operation)

    operations.invoke = keep  # type: ignore[method-assign,assignment]


def operations_of(script: Script, dialect_name: str) -> list[alembic_ops.MigrateOperation]:
    """The operations a revision's upgrade() asks for, recorded without a database."""
    context = MigrationContext.configure(dialect_name=dialect_name, opts={"as_sql": True})
    found: list[alembic_ops.MigrateOperation] = []

    @contextmanager
    def batch_alter_table(
        table_name: str, schema: str | None = None, **_kw: Any
    ) -> Iterator[BatchOperations]:
        # Batch operations read only the table's name and schema from their impl.
        impl = SimpleNamespace(table_name=table_name, schema=schema)
        batch = BatchOperations(context, impl=impl)  # type: ignore[arg-type]
        _recording(batch, found)
        yield batch

    # Operations.context binds `op` (alembic.op) to this instance for the revision's code.
    with Operations.context(context) as operations:
        _recording(operations, found)
        operations.batch_alter_table = batch_alter_table  # type: ignore[method-assign,assignment]
        script.module.upgrade()
    return found


def breaking_in(scripts: list[Script], dialect_name: str) -> list[Breaking]:
    found = []
    for script in scripts:
        contract = bool(getattr(script.module, CONTRACT_ATTRIBUTE, False))
        for operation in operations_of(script, dialect_name):
            what = breaking_operation(operation)
            if what is not None:
                found.append(Breaking(script.revision, script.path, what, contract))
    return found


def pending_scripts(script_dir: ScriptDirectory, heads: list[str]) -> list[Script]:
    """The revisions an upgrade to head would apply, oldest first."""
    lower: str | tuple[str, ...] = tuple(heads) if len(heads) > 1 else heads[0]
    return list(reversed(list(script_dir.iterate_revisions("heads", lower))))


def check_pending(
    database_url: str, *, allow_contract: bool, script_location: Path = MIGRATIONS_DIR
) -> list[Breaking]:
    """Raise IncompatibleMigration unless every pending revision may run beside the release
    in service; the contract steps allowed (empty: nothing of the kind pending).

    A database without any revision yet has no release running against it: nothing to break.
    """
    heads = current_heads(database_url)
    if not heads:
        return []
    script_dir = ScriptDirectory.from_config(alembic_config(database_url, script_location))
    dialect = database_url.split(":", 1)[0].split("+", 1)[0]
    found = breaking_in(pending_scripts(script_dir, heads), dialect)
    refused = [b for b in found if not (b.contract and allow_contract)]
    if refused:
        raise IncompatibleMigration(refused)
    return found


def guarded_upgrade(
    database_url: str, *, allow_contract: bool = False, script_location: Path = MIGRATIONS_DIR
) -> list[Breaking]:
    """`manireports db upgrade`: the check, then the upgrade to head. The contract steps run."""
    allowed = check_pending(
        database_url, allow_contract=allow_contract, script_location=script_location
    )
    command.upgrade(alembic_config(database_url, script_location), "head")
    return allowed
