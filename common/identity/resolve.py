"""The Google email roster sync uses for an LMS user: an email the event names wins; else the
mapping; else `MappingMissing`, naming the source and id, so the event can be parked until an
import maps the person."""

from __future__ import annotations

from sqlalchemy import select

from common.appdb import AppDB
from common.models.identity import IdentityMapping


class MappingMissing(LookupError):
    def __init__(self, source: str, user_id: str) -> None:
        super().__init__(
            f"no Google email mapped for {source} user {user_id}: import a mapping for it"
        )
        self.source = source
        self.user_id = user_id


def resolve(appdb: AppDB, source: str, user_id: str | int,
            explicit_email: str | None = None) -> str:  # fmt: skip
    if explicit_email and explicit_email.strip():
        return explicit_email.strip()
    source, user_id = source.strip().lower(), str(user_id).strip()
    with appdb.sessions() as session:
        email = session.scalar(
            select(IdentityMapping.google_email).where(
                IdentityMapping.source == source, IdentityMapping.lms_user_id == user_id
            )
        )
    if email is None:
        raise MappingMissing(source, user_id)
    return email
