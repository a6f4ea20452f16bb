"""Rows by id that cannot come back from another tenant: the query itself is scoped.

A loader answers with the row, raises `NotFound` when no such row exists anywhere, and raises
`TenantViolation` (with the row's company, for the audit entry) when it exists outside the
scope — after the scoped query found nothing, so no other tenant's data was read to decide it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from common.models.api import ApiToken
from common.models.mail import CloudJob
from common.moodle import MoodleSource
from common.tenancy.scope import NotFound, TenantScope, TenantViolation
from common.tenancy.scoped import scoped


def load_scoped(
    first: Callable[[Select], Any],  # type: ignore[type-arg]
    query: Select,  # type: ignore[type-arg]
    scope: TenantScope,
    source: MoodleSource | None,
    *,
    what: str,
    company_of: Callable[[Any], int | None] = lambda _row: None,
) -> Any:
    """The one row ``query`` finds within ``scope`` (``first`` runs a query, returns a row)."""
    found = first(scoped(query, scope, source))
    if found is not None:
        return found
    elsewhere = first(query)
    if elsewhere is None:
        raise NotFound(f"no {what}")
    raise TenantViolation(company_of(elsewhere), f"{what} is outside your scope")


def load_job(
    session: Session, job_id: int, scope: TenantScope, source: MoodleSource | None = None
) -> CloudJob:
    job: CloudJob = load_scoped(
        session.scalar, select(CloudJob).where(CloudJob.id == job_id), scope, source,
        what=f"email job {job_id}", company_of=lambda job: job.companyid,
    )  # fmt: skip
    return job


def load_token(session: Session, token_id: int, scope: TenantScope) -> ApiToken:
    token: ApiToken = load_scoped(
        session.scalar, select(ApiToken).where(ApiToken.id == token_id), scope, None,
        what=f"API token {token_id}", company_of=lambda token: token.companyid,
    )  # fmt: skip
    return token


def load_learner(source: MoodleSource, user_id: int, scope: TenantScope) -> int:
    """The id of a Moodle user the scope may see (deleted users are no one's learners)."""
    user = source.tables.user
    query = select(user.c.id).where(user.c.id == user_id, user.c.deleted == 0)
    with source.engine.connect() as conn:
        found = load_scoped(lambda q: conn.execute(q).first(), query, scope, source,
                            what=f"learner {user_id}")  # fmt: skip
    return int(found.id)
