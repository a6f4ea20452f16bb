"""Bearer tokens for the JSON API: issued once, stored as a hash, refused once revoked or expired.

A token acts as one Moodle user (its capabilities are that user's, re-read on every request)
narrowed by its scopes and, optionally, to one company. The token is `mrt_` and 43 URL-safe
characters (256 random bits); the app DB keeps its SHA-256 and its first 8 characters for
display, so a leaked database copy cannot be replayed against the API.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.audit import record_audit
from common.errors import FieldError
from common.models.api import ApiToken
from common.models.base import utcnow
from common.moodle import MoodleSource
from common.tenancy import TenantScope, scoped

TOKEN_PREFIX = "mrt_"
DISPLAY_PREFIX_CHARS = 8
MAX_NAME_CHARS = 100
# What a well-formed token looks like; anything else is refused before touching the DB.
_TOKEN_SHAPE = re.compile(r"mrt_[A-Za-z0-9_-]{43}")
# last_used_at is written at most this often per token: an update on every call would turn
# each API read into a write on one hot row, and a minute tells a live token from a dead one.
LAST_USED_RESOLUTION = timedelta(minutes=1)

SCOPE_REPORTS_READ = "reports:read"
SCOPE_EMAIL_READ = "email:read"
SCOPE_EMAIL_WRITE = "email:write"
SCOPES: dict[str, str] = {
    SCOPE_REPORTS_READ: "run the prebuilt reports the user may run",
    SCOPE_EMAIL_READ: "read the status of email jobs",
    SCOPE_EMAIL_WRITE: "create email jobs (and read their status)",
}
# A scope that grants another: whoever may create jobs may follow them.
_IMPLIED = {SCOPE_EMAIL_WRITE: frozenset({SCOPE_EMAIL_READ})}


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of presenting a token: the row when accepted, else why not (for the audit)."""

    token: ApiToken | None
    refusal: str | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def granted_scopes(token: ApiToken) -> frozenset[str]:
    scopes = set(token.scope_set)
    for scope in token.scope_set:
        scopes |= _IMPLIED.get(scope, frozenset())
    return frozenset(scopes)


def issue(
    session: Session,
    user_id: int,
    name: str,
    scopes: Iterable[str],
    company_id: int | None,
    expires_at: datetime | None,
    *,
    created_by: int | None = None,
    ip: str | None = None,
) -> tuple[str, ApiToken]:
    """A new token for ``user_id``: (the token, shown once and never stored; its row). Audited."""
    name = name.strip()
    wanted = sorted(set(scopes))
    if not name:
        raise FieldError("name", "required")
    if len(name) > MAX_NAME_CHARS:
        raise FieldError("name", f"at most {MAX_NAME_CHARS} characters")
    if not wanted:
        raise FieldError("scopes", "choose at least one scope")
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise FieldError("scopes", f"unknown scope {unknown[0]!r}")
    if expires_at is not None and expires_at <= utcnow():
        raise FieldError("expires_at", "must be in the future")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        userid=user_id,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:DISPLAY_PREFIX_CHARS],
        companyid=company_id,
        scopes=" ".join(wanted),
        createdby=created_by,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    record_audit(
        session, actor_id=created_by, action="api_token_created", object_type="api_token",
        object_id=row.id, company_id=company_id, ip=ip,
        details={"for_user": user_id, "name": name, "scopes": wanted, "prefix": row.prefix,
                 "expires_at": expires_at},
    )  # fmt: skip
    return plaintext, row


def check(session: Session, presented: str, now: datetime | None = None) -> TokenCheck:
    """Look a presented token up (one indexed query) and say whether it may be used now."""
    if not _TOKEN_SHAPE.fullmatch(presented):
        return TokenCheck(None, "malformed token")
    digest = hash_token(presented)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    # The lookup may match case-insensitively (MariaDB's default collation); the constant-time
    # comparison is what decides.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return TokenCheck(None, "unknown token")
    now = now or utcnow()
    if row.revoked_at is not None:
        return TokenCheck(None, f"revoked token {row.prefix}")
    if row.expires_at is not None and row.expires_at <= now:
        return TokenCheck(None, f"expired token {row.prefix}")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return TokenCheck(row)


def authenticate(session: Session, presented: str, now: datetime | None = None) -> ApiToken | None:
    """The token's row if it may be used now (and its last use recorded), else None."""
    return check(session, presented, now).token


def revoke(
    session: Session, token: ApiToken, *, actor_id: int | None, ip: str | None = None
) -> bool:
    """Refuse the token from now on; False if it already was. Audited."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    record_audit(
        session, actor_id=actor_id, action="api_token_revoked", object_type="api_token",
        object_id=token.id, company_id=token.companyid, ip=ip,
        details={"for_user": token.userid, "name": token.name, "prefix": token.prefix},
    )  # fmt: skip
    return True


def list_tokens(session: Session, scope: TenantScope) -> list[ApiToken]:
    """The tokens ``scope`` may see, newest first (a user's own, or everyone's for an admin)."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    return list(session.scalars(scoped(query, scope)))


def user_id_for_username(source: MoodleSource, username: str) -> int | None:
    """The active local account a site admin names when issuing a token for someone else."""
    u = source.tables.user
    query = select(u.c.id).where(
        u.c.username == username.strip().lower(), u.c.mnethostid == 1, u.c.deleted == 0
    )
    with source.engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else int(found)


def usernames(source: MoodleSource, user_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    u = source.tables.user
    with source.engine.connect() as conn:
        rows = conn.execute(select(u.c.id, u.c.username).where(u.c.id.in_(ids)))
        return {int(r.id): str(r.username) for r in rows}
