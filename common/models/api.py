"""App DB model for the JSON API's bearer tokens.

Only a SHA-256 hash of each token is stored: the token itself is shown once, when it is
issued, so a copy of the database cannot be replayed against the API.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow


class ApiToken(Base):
    """A token that acts as one Moodle user, optionally restricted to one company."""

    __tablename__ = "manireports_api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(100))
    # Hex SHA-256 of the token; unique, so authenticating is one indexed lookup.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(8))
    companyid: Mapped[int | None] = mapped_column(BigInteger)
    # Space-separated, as OAuth writes scopes: "reports:read email:write".
    scopes: Mapped[str] = mapped_column(String(255))
    createdby: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())
