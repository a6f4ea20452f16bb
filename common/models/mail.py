"""App DB models: email offload (per-company provider settings, jobs, recipients, callbacks).

A job's recipients are rows of their own, so a chunk on the bus carries only ids and each
recipient's outcome is recorded where a redelivered chunk can see it (issue 5).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow

# Job lifecycle: pending → queued → processing → completed / partially_failed / failed;
# cancelled from any state that is not final.
JOB_PENDING = "pending"
JOB_QUEUED = "queued"
JOB_PROCESSING = "processing"
JOB_COMPLETED = "completed"
JOB_PARTIALLY_FAILED = "partially_failed"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"
JOB_FINAL_STATES = (JOB_COMPLETED, JOB_PARTIALLY_FAILED, JOB_FAILED, JOB_CANCELLED)

JOB_TYPES = ("license_allocation", "user_created", "bulk", "scheduled_report", "certificate",
             "task_alert", "hr_sync_report")  # fmt: skip

# Recipient lifecycle: pending → sending (claimed by one mailer) → sent / failed;
# cancelled when the job is. A `sending` row whose claim is older than the ack wait belongs
# to a mailer that died mid-send and may be claimed again.
RECIPIENT_PENDING = "pending"
RECIPIENT_SENDING = "sending"
RECIPIENT_SENT = "sent"
RECIPIENT_FAILED = "failed"
RECIPIENT_CANCELLED = "cancelled"
RECIPIENT_STATES = (
    RECIPIENT_PENDING,
    RECIPIENT_SENDING,
    RECIPIENT_SENT,
    RECIPIENT_FAILED,
    RECIPIENT_CANCELLED,
)


class CloudConf(Base):
    """One company's email offload settings. `secrets` is Fernet ciphertext (common.secrets)."""

    __tablename__ = "manireports_cloud_conf"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    companyid: Mapped[int] = mapped_column(BigInteger, unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    provider: Mapped[str] = mapped_column(String(16))
    # Non-secret provider settings as JSON (host, port, region, domain, …).
    settings: Mapped[str] = mapped_column(Text, default="{}")
    # Secret settings (passwords, API keys, the callback key) as encrypted JSON.
    secrets: Mapped[str] = mapped_column(Text, default="")
    sender_email: Mapped[str] = mapped_column(String(255))
    sender_name: Mapped[str | None] = mapped_column(String(255))
    chunk_size: Mapped[int] = mapped_column(Integer, default=100)
    rate_per_s: Mapped[float] = mapped_column(Float, default=0.0)  # 0: no quota
    # Comma-separated IOMAD template names offloaded (license_allocated, user_create).
    offloaded_events: Mapped[str] = mapped_column(String(255), default="")
    use_sqs: Mapped[bool] = mapped_column(Boolean, default=False)
    sqs_queue_url: Mapped[str | None] = mapped_column(String(1024))
    s3_bucket: Mapped[str | None] = mapped_column(String(255))
    modifiedby: Mapped[int | None] = mapped_column(BigInteger)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CloudTemplate(Base):
    """A company's Mustache template for one job type (companyid 0: the site default)."""

    __tablename__ = "manireports_cloud_templates"
    __table_args__ = (Index("ix_manireports_cloud_templates_company_type", "companyid", "jobtype",
                            unique=True),)  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    companyid: Mapped[int] = mapped_column(BigInteger)
    jobtype: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CloudJob(Base):
    __tablename__ = "manireports_cloud_jobs"
    __table_args__ = (Index("ix_manireports_cloud_jobs_company_status", "companyid", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    companyid: Mapped[int] = mapped_column(BigInteger, index=True)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24), default=JOB_PENDING, index=True)
    source: Mapped[str] = mapped_column(String(16))  # ui, api, iomad, schedule
    route: Mapped[str] = mapped_column(String(8), default="local")  # local or sqs
    createdby: Mapped[int | None] = mapped_column(BigInteger)
    subject_template: Mapped[str] = mapped_column(Text)
    html_template: Mapped[str] = mapped_column(Text)
    text_template: Mapped[str | None] = mapped_column(Text)
    # Job-level JSON: variables shared by every recipient and where the job came from.
    payload: Mapped[str] = mapped_column(Text, default="{}")
    chunk_size: Mapped[int] = mapped_column(Integer, default=100)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_dead: Mapped[int] = mapped_column(Integer, default=0)
    recipients_total: Mapped[int] = mapped_column(Integer, default=0)
    emails_sent: Mapped[int] = mapped_column(Integer, default=0)
    emails_failed: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    timestarted: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timecompleted: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CloudRecipient(Base):
    __tablename__ = "manireports_cloud_recip"
    __table_args__ = (
        Index("ix_manireports_cloud_recip_job_chunk", "jobid", "chunk"),
        Index("ix_manireports_cloud_recip_job_status", "jobid", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    jobid: Mapped[int] = mapped_column(BigInteger)
    chunk: Mapped[int] = mapped_column(Integer, default=0)
    email: Mapped[str] = mapped_column(String(255))
    userid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The template variables for this recipient (e.g. a temporary password), as JSON.
    recipient_data: Mapped[str] = mapped_column(Text, default="{}")
    # Where the recipient came from when that must stay unique, e.g. "iomad_email:123".
    source_ref: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=RECIPIENT_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    timesent: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CloudCallbackSeen(Base):
    """Signatures of accepted cloud-worker callbacks: a replayed request is refused."""

    __tablename__ = "manireports_cloud_callbacks_seen"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    signature: Mapped[str] = mapped_column(String(64), unique=True)
    companyid: Mapped[int] = mapped_column(BigInteger, index=True)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CloudDeadChunk(Base):
    """A chunk that used up its deliveries; its copy is on the MAIL_DEAD stream as well."""

    __tablename__ = "manireports_cloud_dead"
    __table_args__ = (Index("ix_manireports_cloud_dead_job_chunk", "jobid", "chunk"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    jobid: Mapped[int] = mapped_column(BigInteger)
    chunk: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    stream_seq: Mapped[int | None] = mapped_column(BigInteger)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    timeretried: Mapped[datetime | None] = mapped_column(UTCDateTime)
