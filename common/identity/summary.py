"""What the mapping holds: counts per source, pending batches, and finding one mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from common.appdb import AppDB
from common.models.identity import IdentityImportRow, IdentityMapping


@dataclass(frozen=True)
class SourceSummary:
    source: str
    mappings: int
    unique_emails: int
    last_import: datetime | None  # the last applied batch with rows of this source

    def as_dict(self) -> dict[str, object]:
        last = self.last_import.isoformat() if self.last_import else None
        return {"source": self.source, "mappings": self.mappings,
                "unique_emails": self.unique_emails, "last_import": last}  # fmt: skip


@dataclass(frozen=True)
class PendingBatch:
    batch_id: str
    rows: int
    rows_in_error: int
    imported_at: datetime
    importedby: int | None


def source_summaries(appdb: AppDB) -> list[SourceSummary]:
    m, s = IdentityMapping, IdentityImportRow
    with appdb.sessions() as session:
        counts = {
            row.source: (row.mappings, row.emails)
            for row in session.execute(
                select(m.source, func.count().label("mappings"),
                       func.count(func.distinct(m.google_email)).label("emails"))
                .group_by(m.source)
            )
        }  # fmt: skip
        last = {
            source: at
            for source, at in session.execute(
                select(s.source, func.max(s.applied_at)).where(s.applied.is_(True))
                .group_by(s.source)
            )
        }  # fmt: skip
    return [
        SourceSummary(source, *counts.get(source, (0, 0)), last.get(source))
        for source in sorted(set(counts) | set(last))
    ]


def pending_batches(appdb: AppDB, limit: int = 20) -> list[PendingBatch]:
    """Batches staged and not applied, newest first."""
    s = IdentityImportRow
    with appdb.sessions() as session:
        rows = session.execute(
            select(s.batch_id, func.count(), func.count(s.errors), func.min(s.imported_at),
                   func.max(s.importedby))
            .where(s.applied.is_(False)).group_by(s.batch_id)
            .order_by(func.min(s.imported_at).desc(), s.batch_id).limit(limit)
        ).all()  # fmt: skip
    return [PendingBatch(*row) for row in rows]


@dataclass(frozen=True)
class BatchInfo:
    rows: int
    rows_in_error: int
    applied_at: datetime | None
    imported_at: datetime
    importedby: int | None

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def batch_info(appdb: AppDB, batch_id: str) -> BatchInfo | None:
    s = IdentityImportRow
    with appdb.sessions() as session:
        row = session.execute(
            select(func.count(), func.count(s.errors), func.max(s.applied_at),
                   func.min(s.imported_at), func.max(s.importedby))
            .where(s.batch_id == batch_id)
        ).one()  # fmt: skip
    return BatchInfo(*row) if row[0] else None


def find_mappings(appdb: AppDB, *, source: str = "", user_id: str = "", email: str = "",
                  limit: int = 50) -> list[IdentityMapping]:  # fmt: skip
    """By source and id (either may be blank) or by email (exact, case-insensitive)."""
    m = IdentityMapping
    query = select(m)
    if email.strip():
        query = query.where(m.google_email == email.strip().lower())
    else:
        if source.strip():
            query = query.where(m.source == source.strip().lower())
        if user_id.strip():
            query = query.where(m.lms_user_id == user_id.strip())
        if not (source.strip() or user_id.strip()):
            return []
    with appdb.sessions() as session:
        return list(session.scalars(query.order_by(m.source, m.lms_user_id).limit(limit)))


@dataclass(frozen=True)
class StagedRow:
    line: int
    source: str
    lms_user_id: str
    google_email: str
    full_name: str | None
    errors: list[dict[str, str]]


def batch_rows(appdb: AppDB, batch_id: str, *, only_errors: bool = False, limit: int = 100,
               offset: int = 0) -> list[StagedRow]:  # fmt: skip
    """One page of a batch's rows in line order, each with its [{field, error}]."""
    s = IdentityImportRow
    query = select(s.line, s.source, s.lms_user_id, s.google_email, s.full_name, s.errors).where(
        s.batch_id == batch_id
    )
    if only_errors:
        query = query.where(s.errors.is_not(None))
    with appdb.sessions() as session:
        found = session.execute(query.order_by(s.line, s.id).limit(limit).offset(offset)).all()
    return [StagedRow(r.line, r.source, r.lms_user_id, r.google_email, r.full_name,
                      json.loads(r.errors) if r.errors else []) for r in found]  # fmt: skip
