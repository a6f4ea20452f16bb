"""Unsubscribing from a company's bulk email: signed per-recipient links (RFC 8058), the stored
opt-outs, and which job types honour them.

Every message of a job type in HONOURS_UNSUBSCRIBE carries ``List-Unsubscribe: <url>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. The URL names the recipient row (not the
address: no personal data in links that mail clients and proxies log) with an expiry and an
HMAC over both, keyed from the site's secret key, so a mail client's one-click POST needs no
session or CSRF token — the signature is the proof — and nobody can unsubscribe someone else
by guessing ids. The opt-out is stored per company and address; the mailer skips those
addresses in later jobs (recorded as `skipped`, not as failures).

Transactional mail is never skipped and carries no unsubscribe header: the welcome email with
a temporary password (`user_created`), licence allocations (`license_allocation`) and issued
certificates (`certificate`) are what a person needs to use the site, not something they
subscribed to. Bulk mail (`bulk`, which includes the at-risk digests to managers) and scheduled
reports (`scheduled_report`) honour it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.models.mail import CloudJob, CloudRecipient
from common.models.unsubscribe import MailUnsubscribe

HONOURS_UNSUBSCRIBE = frozenset({"bulk", "scheduled_report"})
RECIPIENT_SKIPPED = "skipped"
SKIPPED_REASON = "unsubscribed"
VALID_DAYS = 365
ONE_CLICK = "List-Unsubscribe=One-Click"
_KEY_LABEL = b"manireports unsubscribe link v1"
_MAX_TOKEN_CHARS = 120


class LinkRejected(Exception):
    """Why an unsubscribe link is refused (safe to show: it names no one)."""


class LinkExpired(LinkRejected):
    """A genuine link past its expiry."""


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Makes and checks the signed links; the mailer and the web tier build it the same way."""

    secret_key: str
    base_url: str  # the site's public URL, e.g. https://reports.example.com
    valid_s: int = VALID_DAYS * 86400

    def _key(self) -> bytes:
        # A key of its own, so a link's MAC can never stand in for another signature.
        return hmac.new(self.secret_key.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, recipient_id: int, expires: int) -> str:
        mac = hmac.new(self._key(), f"{recipient_id}.{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:18]).decode().rstrip("=")

    def token(self, recipient_id: int, *, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.valid_s)
        return f"{recipient_id}.{expires}.{self._mac(recipient_id, expires)}"

    def url(self, recipient_id: int, *, now: float | None = None) -> str:
        return f"{self.base_url.rstrip('/')}/unsubscribe/{self.token(recipient_id, now=now)}"

    def headers(self, recipient_id: int, *, now: float | None = None) -> dict[str, str]:
        return {
            "List-Unsubscribe": f"<{self.url(recipient_id, now=now)}>",
            "List-Unsubscribe-Post": ONE_CLICK,
        }

    def recipient_of(self, token: str, *, now: float | None = None) -> int:
        """The recipient id a genuine, unexpired token names; LinkRejected otherwise."""
        parts = token.split(".") if len(token) <= _MAX_TOKEN_CHARS else []
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise LinkRejected("This unsubscribe link is not valid.")
        recipient_id, expires = int(parts[0]), int(parts[1])
        if not hmac.compare_digest(self._mac(recipient_id, expires), parts[2]):
            raise LinkRejected("This unsubscribe link is not valid.")
        if expires < (time.time() if now is None else now):
            raise LinkExpired("This unsubscribe link has expired.")
        return recipient_id


@dataclass(frozen=True)
class LinkTarget:
    recipient_id: int
    job_id: int
    company_id: int
    email: str
    userid: int | None
    already: bool


def link_target(session: Session, recipient_id: int) -> LinkTarget:
    """Who a verified link unsubscribes, and whether they already are."""
    row = session.execute(
        select(CloudRecipient.email, CloudRecipient.userid, CloudJob.id, CloudJob.companyid)
        .join(CloudJob, CloudJob.id == CloudRecipient.jobid)
        .where(CloudRecipient.id == recipient_id)
    ).first()
    if row is None:
        raise LinkRejected("This unsubscribe link is no longer valid.")
    email = normalise(row.email)
    already = session.scalar(
        select(MailUnsubscribe.id).where(
            MailUnsubscribe.companyid == row.companyid, MailUnsubscribe.email == email
        )
    )
    return LinkTarget(recipient_id, row.id, row.companyid, email, row.userid, already is not None)


def unsubscribe(session: Session, target: LinkTarget) -> bool:
    """Store the opt-out; False when it was there already (a second click is harmless)."""
    if target.already:
        return False
    try:
        with session.begin_nested():
            session.add(
                MailUnsubscribe(
                    companyid=target.company_id,
                    email=target.email,
                    userid=target.userid,
                    jobid=target.job_id,
                )  # fmt: skip
            )
    except IntegrityError:  # two clicks at once: the other one stored it
        return False
    return True


def unsubscribed_among(session: Session, company_id: int, emails: Iterable[str]) -> set[str]:
    """Which of ``emails`` (any case) opted out of ``company_id``'s mail; lower-cased."""
    wanted = sorted({normalise(e) for e in emails})
    if not wanted:
        return set()
    found = session.scalars(
        select(MailUnsubscribe.email).where(
            MailUnsubscribe.companyid == company_id, MailUnsubscribe.email.in_(wanted)
        )
    )
    return set(found)


def unsubscribe_count(session: Session, company_id: int) -> int:
    return int(
        session.scalar(select(func.count()).where(MailUnsubscribe.companyid == company_id)) or 0
    )


def normalise(email: str) -> str:
    return email.strip().lower()[:255]


def unsubscribe_headers(
    links: UnsubscribeLinks | None, job_type: str, recipient_id: int
) -> dict[str, str]:
    """The RFC 8058 headers of one recipient's message: none for transactional job types or a
    site without links. Every delivery path (local mailers, the SQS chunks for the Lambda) asks
    here, so they carry the same headers."""
    if links is None or job_type not in HONOURS_UNSUBSCRIBE:
        return {}
    return links.headers(recipient_id)


def links_for(settings) -> UnsubscribeLinks:  # type: ignore[no-untyped-def]
    """The site's links: PUBLIC_URL, else the web tier's own address."""
    return UnsubscribeLinks(settings.secret_key, settings.public_base)
