"""Download links of scheduled-report files too big to attach: the token in the link is the
only key (256 random bits), it works until the file's expiry, and a file past it is gone for
good (retention removes it)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select

from common.appdb import AppDB
from common.models.base import utcnow
from common.models.schedules import ReportFile

_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


class LinkExpired(LookupError):
    pass


def file_by_token(appdb: AppDB, token: str, now: datetime | None = None) -> ReportFile:
    """The file behind a download link; LookupError when there is none, LinkExpired when the
    link is past its date."""
    if not _TOKEN.fullmatch(token):
        raise LookupError("not a download link")
    with appdb.transaction() as session:
        found = session.scalars(select(ReportFile).where(ReportFile.token == token)).first()
        if found is None:
            raise LookupError("no such file")
        if found.expires_at <= (now or utcnow()):
            raise LinkExpired("this link has expired")
        session.expunge(found)
    return found
