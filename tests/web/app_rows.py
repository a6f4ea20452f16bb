"""Reading the app DB behind a test app: its audit events and a settings page's stored row."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select

from common.appdb import AppDB
from common.models.access import AuditLog

Row = TypeVar("Row")


def appdb(app: Any) -> AppDB:
    return app.extensions["manireports"].appdb  # type: ignore[no-any-return]


def audits(app: Any, action: str) -> list[AuditLog]:
    with appdb(app).transaction() as db:
        found = list(db.scalars(select(AuditLog).where(AuditLog.action == action)
                                .order_by(AuditLog.id)))  # fmt: skip
        db.expunge_all()
    return found


def stored_row(app: Any, model: type[Row], row_id: int) -> Row | None:
    """The row, detached (readable after the session closes), or None."""
    with appdb(app).transaction() as db:
        row = db.get(model, row_id)
        if row is not None:
            db.expunge(row)
    return row
