"""Applying a staged batch to `lms_identity_map`: one transaction, in chunks of 1,000 rows —
each chunk's existing mappings are read with one query per source, then new ones inserted and
changed ones updated with one executemany each, so 100,000 rows take seconds, not minutes.

A blank full name in the file keeps the name already mapped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, exists, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from common.appdb import AppDB
from common.audit import record_audit
from common.errors import FieldError
from common.models.base import utcnow
from common.models.identity import IdentityImportRow, IdentityMapping

ACTION = "identity_import_applied"
CHUNK = 1000
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
        rows = session.scalar(select(func.count()).where(s.batch_id == batch_id))
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
        counts = {"imported": 0, "updated": 0, "unchanged": 0}
        last_id = 0
        while True:
            chunk = session.execute(
                select(s.id, s.source, s.lms_user_id, s.google_email, s.full_name)
                .where(s.batch_id == batch_id, s.id > last_id).order_by(s.id).limit(CHUNK)
            ).all()  # fmt: skip
            if not chunk:
                break
            last_id = chunk[-1].id
            _apply_chunk(session, chunk, now, counts)
        sources = sorted(session.scalars(select(s.source).where(s.batch_id == batch_id)
                                         .distinct()))  # fmt: skip
        record_audit(session, actor_id=actor_id, action=ACTION, object_type="identity_import",
                     object_id=batch_id, ip=ip,
                     details={"rows": rows, "sources": sources, "via": via, **counts})  # fmt: skip
    return Applied(batch_id, rows, **counts)


def _apply_chunk(session: Session, chunk: Sequence[Any], now: Any, counts: dict[str, int]) -> None:
    m = IdentityMapping
    wanted: dict[tuple[str, str], Any] = {}
    for row in chunk:
        key = (row.source, row.lms_user_id)
        if key in wanted:
            counts["unchanged"] += 1  # the same person twice with the same email
        wanted[key] = row
    existing: dict[tuple[str, str], Any] = {}
    keys = list(wanted)
    found = session.execute(
        select(m.id, m.source, m.lms_user_id, m.google_email, m.full_name)
        .where(tuple_(m.source, m.lms_user_id).in_(keys))
    )  # fmt: skip
    for mapped in found:
        existing[(mapped.source, mapped.lms_user_id)] = mapped
    inserts, updates = [], []
    for key, row in wanted.items():
        old = existing.get(key)
        if old is None:
            inserts.append({"source": row.source, "lms_user_id": row.lms_user_id,
                            "google_email": row.google_email, "full_name": row.full_name,
                            "created_at": now, "updated_at": now})  # fmt: skip
            continue
        name = row.full_name or old.full_name
        if (old.google_email, old.full_name) == (row.google_email, name):
            counts["unchanged"] += 1
            continue
        updates.append({"mapping_id": old.id, "email": row.google_email, "name": name,
                        "now": now})  # fmt: skip
    if inserts:
        session.execute(insert(MAPPED), inserts)
        counts["imported"] += len(inserts)
    if updates:
        session.execute(
            update(MAPPED).where(MAPPED.c.id == bindparam("mapping_id"))
            .values(google_email=bindparam("email"), full_name=bindparam("name"),
                    updated_at=bindparam("now")),
            updates,
        )  # fmt: skip
        counts["updated"] += len(updates)
