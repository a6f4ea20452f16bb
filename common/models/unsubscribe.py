"""App DB model: addresses that unsubscribed from a company's bulk email (RFC 8058 one-click).

One row per company and address (lower-cased). The mailer skips these addresses in jobs whose
type honours unsubscribing (`common.mail.unsubscribe.HONOURS_UNSUBSCRIBE`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow


class MailUnsubscribe(Base):
    __tablename__ = "manireports_mail_unsubscribes"
    __table_args__ = (
        Index("ix_manireports_mail_unsubscribes_company_email", "companyid", "email", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    companyid: Mapped[int] = mapped_column(BigInteger)
    email: Mapped[str] = mapped_column(String(255))
    userid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The job whose message carried the link (where the unsubscribe came from).
    jobid: Mapped[int | None] = mapped_column(BigInteger)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
