"""Staging an uploaded file as one batch of `lms_identity_import` rows, each with its problems.

Rows are checked one by one as they are read and inserted 1,000 at a time, so memory stays flat
however large the file. Duplicates (the same source and id with different emails) need the
whole file, so they are found afterwards in SQL, over the staged batch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import IO, Any

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from common.appdb import AppDB
from common.identity.csvfile import FileRow, read_rows
from common.identity.rules import MAX_LENGTHS, Rules
from common.models.base import utcnow
from common.models.identity import IdentityImportRow

CHUNK = 1000
STAGED: Table = IdentityImportRow.__table__  # type: ignore[assignment]


@dataclass
class StageResult:
    batch_id: str
    rows: int = 0
    valid: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # [{line, field, error}]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "rows": self.rows, "valid": self.valid,
                "errors": self.errors}  # fmt: skip


def row_problems(row: FileRow, rules: Rules) -> list[dict[str, str]]:
    """[{field, error}] of one row, in the file's field names."""
    source_field, id_field, email_field = row.fields
    problems: list[dict[str, str]] = []
    if not row.source:
        problems.append({"field": source_field, "error": "required"})
    elif problem := rules.source_problem(row.source):
        problems.append({"field": source_field, "error": problem})
    if not row.lms_user_id:
        problems.append({"field": id_field, "error": "required"})
    if not row.google_email:
        problems.append({"field": email_field, "error": "required"})
    elif problem := rules.email_problem(row.google_email):
        problems.append({"field": email_field, "error": problem})
    if len(row.source) > 50 or len(row.lms_user_id) > 100 or len(row.full_name or "") > 255:
        names = {"source": source_field, "lms_user_id": id_field, "full_name": "full_name"}
        for name, limit in MAX_LENGTHS.items():
            value = getattr(row, name) or ""
            # An email over 254 characters already failed the syntax check.
            if len(value) > limit and name != "google_email":
                problems.append({"field": names[name], "error": f"longer than {limit} characters"})
    return problems


def stage_file(
    appdb: AppDB,
    binary: IO[bytes],
    rules: Rules,
    *,
    source: str | None = None,
    actor_id: int | None = None,
) -> StageResult:
    """Stage ``binary`` as a new batch; a file that cannot be read at all is a FieldError
    ("file" or "source") and stages nothing."""
    result = StageResult(batch_id=str(uuid.uuid4()), warnings=rules.warnings)
    with appdb.transaction() as session:
        writer = _StagingWriter(session, result.batch_id, actor_id)
        for chunk in _chunks(read_rows(binary, source)):
            writer.write([(row, row_problems(row, rules)) for row in chunk])
            result.rows += len(chunk)
        _mark_duplicates(session, result.batch_id)
        result.errors = batch_errors(session, result.batch_id)
    result.valid = result.rows - len({e["line"] for e in result.errors})
    return result


class _StagingWriter:
    """One compiled INSERT, run as an executemany per chunk with the values the driver takes:
    the columns every row shares (batch, times, flags, uploader) converted once, not per row
    as Core's executemany would (which cost more than the insert itself)."""

    VARYING = ("line", "source", "lms_user_id", "google_email", "full_name", "errors")

    def __init__(self, session: Session, batch_id: str, actor_id: int | None) -> None:
        self.session = session
        dialect = session.get_bind().dialect
        shared: dict[str, Any] = {"batch_id": batch_id, "imported": True,
                                  "imported_at": utcnow(), "applied": False,
                                  "importedby": actor_id}  # fmt: skip
        for name, value in shared.items():
            convert = STAGED.c[name].type.bind_processor(dialect)
            shared[name] = convert(value) if convert and value is not None else value
        names = [*self.VARYING, *shared]
        compiled = insert(STAGED).compile(dialect=dialect, column_keys=names)
        self.sql = compiled.string
        self.shared = tuple(shared.values())
        # Each row is (its varying values + the shared ones); a positional driver takes them
        # in the statement's order, picked out in C, a named one (pymysql) as a dict.
        order = list(compiled.positiontup or ()) if compiled.positional else None
        self.pick = itemgetter(*(names.index(name) for name in order)) if order else None
        self.names = names

    def write(self, rows: list[tuple[FileRow, list[dict[str, str]]]]) -> None:
        values: list[Any] = []
        shared, pick = self.shared, self.pick
        for row, problems in rows:
            one = (row.line, row.source[:50], row.lms_user_id[:100], row.google_email[:254],
                   row.full_name[:255] if row.full_name else None,
                   json.dumps(problems) if problems else None) + shared  # fmt: skip
            values.append(pick(one) if pick else dict(zip(self.names, one, strict=True)))
        self.session.connection().exec_driver_sql(self.sql, values)


def _chunks(rows: Iterable[FileRow]) -> Iterator[list[FileRow]]:
    chunk: list[FileRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _mark_duplicates(session: Session, batch_id: str) -> None:
    """Every clean row whose source and id appear again with another email gets an error
    naming a line with the other email."""
    s = IdentityImportRow
    clean = (s.batch_id == batch_id) & s.errors.is_(None)
    groups = (
        select(s.source, s.lms_user_id)
        .where(clean)
        .group_by(s.source, s.lms_user_id)
        .having(func.count(func.distinct(s.google_email)) > 1)
    )
    marked: list[dict[str, Any]] = []
    for group_source, group_id in session.execute(groups).all():
        members = session.execute(
            select(s.id, s.line, s.google_email)
            .where(clean, s.source == group_source, s.lms_user_id == group_id)
            .order_by(s.line)
        ).all()
        for member in members:
            other = next(m for m in members if m.google_email != member.google_email)
            problem = [{"field": "lms_user_id",
                        "error": f"{group_source} user {group_id} is also on line {other.line} "
                                 f"with another email ({other.google_email})"}]  # fmt: skip
            marked.append({"row_id": member.id, "problem": json.dumps(problem)})
    if marked:
        session.execute(
            update(STAGED).where(STAGED.c.id == bindparam("row_id"))
            .values(errors=bindparam("problem")),
            marked,
        )  # fmt: skip


def batch_errors(session: Session, batch_id: str, limit: int | None = None,
                 offset: int = 0) -> list[dict[str, Any]]:  # fmt: skip
    """[{line, field, error}] of a batch, in line order."""
    s = IdentityImportRow
    query = (select(s.line, s.errors)
             .where(s.batch_id == batch_id, s.errors.is_not(None))
             .order_by(s.line, s.id))  # fmt: skip
    if limit is not None:
        query = query.limit(limit).offset(offset)
    found = []
    for line, errors in session.execute(query):
        for problem in json.loads(errors or "[]"):
            found.append({"line": line, "field": problem["field"], "error": problem["error"]})
    return found
