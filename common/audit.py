"""The audit log: written in the same transaction as the change it records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.models.access import AuditLog
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
) -> list[AuditLog]:
    """Newest first, filtered by actor, action and a [since, until) time range; a company's
    viewer sees only entries about their company."""
    query = select(AuditLog).order_by(AuditLog.timecreated.desc(), AuditLog.id.desc())
    if user_id is not None:
        query = query.where(AuditLog.userid == user_id)
    if action:
        query = query.where(AuditLog.action == action)
    if since is not None:
        query = query.where(AuditLog.timecreated >= since)
    if until is not None:
        query = query.where(AuditLog.timecreated < until)
    return list(session.scalars(scoped(query.limit(limit).offset(offset), scope)))


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))
