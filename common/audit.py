"""The audit log: written in the same transaction as the change it records."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, case, cast, null, select
from sqlalchemy.orm import Session

from common.analytics.tables import TableSpec
from common.models.access import AuditLog
from common.reports.base import Column
from common.tenancy import TenantScope, scoped

OUTCOME_SUCCESS = "success"
OUTCOME_DENIED = "denied"
OUTCOME_FAILED = "failed"


def record_audit(
    session: Session,
    *,
    actor_id: int | None,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    outcome: str = OUTCOME_SUCCESS,
    company_id: int | None = None,
    ip: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        userid=actor_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id)[:255],
        outcome=outcome,
        companyid=company_id,
        ip=ip,
        details=json.dumps(details, default=str, sort_keys=True) if details else None,
    )
    session.add(entry)
    return entry


AUDIT_TABLE = TableSpec(
    columns=(
        Column("timecreated", "When", "datetime"),
        Column("user", "User", sortable=False),
        Column("action", "Action"),
        Column("object", "Object", sortable=False),
        Column("outcome", "Outcome"),
        # Sorted by the company's name: the route hands audit_query the ids in name order.
        Column("company", "Company", "int"),
        Column("ip", "Address"),
        Column("details", "Details", sortable=False),
    ),
    default_sort="timecreated",
    default_direction="desc",
    row_key=("id",),
)


def audit_query(
    scope: TenantScope,
    *,
    user_id: int | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    company_order: Sequence[int] = (),
) -> Select:  # type: ignore[type-arg]
    """Entries filtered by actor, action and a [since, until) time range; a company's viewer
    sees only entries about their company. Its columns are `AUDIT_TABLE`'s sort keys.

    The company names live in Moodle, not beside the log, so the `company` sort key is each
    entry's company's place in ``company_order`` (ids in name order); entries about no
    company, or one not listed, have none."""
    a = AuditLog
    company: ColumnElement[Any]
    if company_order:
        ranks = {int(company_id): rank for rank, company_id in enumerate(company_order)}
        company = case(ranks, value=a.companyid, else_=null())
    else:
        company = cast(null(), Integer)
    query = select(a.id, a.timecreated, a.userid, a.action, a.object_type, a.object_id,
                   a.outcome, a.companyid, company.label("company"), a.ip,
                   a.details)  # fmt: skip
    if user_id is not None:
        query = query.where(a.userid == user_id)
    if action:
        query = query.where(a.action == action)
    if since is not None:
        query = query.where(a.timecreated >= since)
    if until is not None:
        query = query.where(a.timecreated < until)
    return scoped(query, scope)


def search_audit(
    session: Session,
    scope: TenantScope,
    *,
    user_id: int | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Any]:
    """Newest first (see `audit_query`)."""
    query = audit_query(scope, user_id=user_id, action=action, since=since, until=until)
    ordered = query.order_by(AuditLog.timecreated.desc(), AuditLog.id.desc())
    return list(session.execute(ordered.limit(limit).offset(offset)))


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))
