"""Applying a staged batch to `lms_identity_map` in one transaction, set by set rather than row
by row, so 100,000 rows take about as long as inserting them:

1. the staged rows whose person is mapped already are joined to their mapping (the join walks
   the batch's index and looks each person up by the unique (source, lms_user_id) index), a
   range of lines at a time; the changed ones are updated with one executemany per range;
2. everyone else is inserted with one INSERT … SELECT from the staging table (INSERT OR IGNORE
   on SQLite, INSERT IGNORE on MariaDB, ON CONFLICT DO NOTHING on PostgreSQL: the people
   mapped already are skipped by the unique index).

Counts: `imported` new mappings, `updated` mappings whose email or name changed, `unchanged`
the rest of the rows (a person listed twice with the same email counts once as imported or
updated, then as unchanged). A blank full name keeps the name already mapped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, exists, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from common.appdb import AppDB
from common.audit import record_audit
from common.errors import FieldError
from common.models.base import utcnow
from common.models.identity import IdentityImportRow, IdentityMapping

ACTION = "identity_import_applied"
LINES = 2000  # lines of the file compared per query
MAPPED: Table = IdentityMapping.__table__  # type: ignore[assignment]
STAGED: Table = IdentityImportRow.__table__  # type: ignore[assignment]


class BatchNotFound(FieldError):
    def __init__(self, batch_id: str) -> None:
        super().__init__("batch_id", f"no import batch {batch_id}", status=404)


@dataclass(frozen=True)
class Applied:
    batch_id: str
    rows: int
    imported: int
    updated: int
    unchanged: int

    def as_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "rows": self.rows, "valid": self.rows, "errors": [],
                "imported": self.imported, "updated": self.updated,
                "unchanged": self.unchanged}  # fmt: skip


def apply_batch(appdb: AppDB, batch_id: str, *, actor_id: int | None = None,
                ip: str | None = None, via: str = "cli") -> Applied:  # fmt: skip
    """Raises BatchNotFound, or FieldError("batch_id") when the batch has errors or was
    applied already (by anyone: the claim below is atomic)."""
    s = IdentityImportRow
    with appdb.transaction() as session:
        rows, last_line = session.execute(
            select(func.count(), func.max(s.line)).where(s.batch_id == batch_id)
        ).one()
        if not rows:
            raise BatchNotFound(batch_id)
        if session.scalar(select(exists().where(s.batch_id == batch_id, s.errors.is_not(None)))):
            raise FieldError("batch_id", "the batch has rows in error: fix the file and upload "
                             "it again")  # fmt: skip
        now = utcnow()
        claimed = session.execute(
            update(STAGED).where(STAGED.c.batch_id == batch_id, STAGED.c.applied.is_(False))
            .values(applied=True, applied_at=now)
        ).rowcount  # type: ignore[attr-defined]  # fmt: skip
        if claimed != rows:
            raise FieldError("batch_id", "the batch was applied already")
        updated = _update_changed(session, batch_id, last_line, now)
        imported = _insert_new(session, batch_id, now)
        counts = {"imported": imported, "updated": updated,
                  "unchanged": rows - imported - updated}  # fmt: skip
        sources = sorted(session.scalars(select(s.source).where(s.batch_id == batch_id)
                                         .distinct()))  # fmt: skip
        record_audit(session, actor_id=actor_id, action=ACTION, object_type="identity_import",
                     object_id=batch_id, ip=ip,
                     details={"rows": rows, "sources": sources, "via": via, **counts})  # fmt: skip
    return Applied(batch_id, rows, **counts)


def _update_changed(session: Session, batch_id: str, last_line: int, now: datetime) -> int:
    s, m = IdentityImportRow, IdentityMapping
    done: set[int] = set()  # mappings updated already (a person listed twice)
    for start in range(0, last_line, LINES):
        found = session.execute(
            select(m.id, s.google_email, s.full_name, m.google_email.label("old_email"),
                   m.full_name.label("old_name"))
            .join(m, and_(m.source == s.source, m.lms_user_id == s.lms_user_id))
            .where(s.batch_id == batch_id, s.line > start, s.line <= start + LINES)
        ).all()  # fmt: skip
        changes = []
        for row in found:
            name = row.full_name or row.old_name
            if row.id in done or (row.google_email, name) == (row.old_email, row.old_name):
                continue
            done.add(row.id)
            changes.append({"mapping_id": row.id, "email": row.google_email, "name": name,
                            "now": now})  # fmt: skip
        if changes:
            session.execute(
                update(MAPPED).where(MAPPED.c.id == bindparam("mapping_id"))
                .values(google_email=bindparam("email"), full_name=bindparam("name"),
                        updated_at=bindparam("now")),
                changes,
            )  # fmt: skip
    return len(done)


def _insert_new(session: Session, batch_id: str, now: datetime) -> int:
    """Everyone in the batch not mapped yet, in one INSERT … SELECT. IGNORE skips the people
    mapped already (updated above) and a person's second line (the staging checks made sure it
    has the same email), without a GROUP BY or an anti-join over the batch."""
    s = IdentityImportRow
    stamp = literal(now, type_=MAPPED.c.created_at.type)
    new = (
        select(s.source, s.lms_user_id, s.google_email, s.full_name, stamp, stamp)
        .where(s.batch_id == batch_id)
        .order_by(s.line)
    )  # fmt: skip
    columns = ["source", "lms_user_id", "google_email", "full_name", "created_at", "updated_at"]
    if session.get_bind().dialect.name == "postgresql":  # PostgreSQL's IGNORE
        statement: Any = (
            postgresql.insert(MAPPED).from_select(columns, new).on_conflict_do_nothing()
        )
    else:
        statement = (
            insert(MAPPED).from_select(columns, new)
            .prefix_with("OR IGNORE", dialect="sqlite").prefix_with("IGNORE", dialect="mysql")
            .prefix_with("IGNORE", dialect="mariadb")
        )  # fmt: skip
    # An INSERT's rowcount is kept only when asked for (psycopg's is gone otherwise).
    result = session.execute(statement.execution_options(preserve_rowcount=True))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
