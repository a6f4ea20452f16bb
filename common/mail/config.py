"""A company's email offload settings as the mailers read them, and as the admin page shows them.

Provider settings are split by the provider's own schema: fields marked secret (passwords, API
keys), the AWS secret key and the cloud-callback key go into one encrypted JSON blob; the rest
are stored as plain JSON. Secrets are never handed to a page in full (`masked_secrets`).
Checking and saving a change is `config_save.py`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.mail.provider_settings import PROVIDER_SETTINGS
from common.models.mail import CloudConf
from common.secrets import decrypt, mask

# IOMAD email template names that can be offloaded, and the job type each becomes.
OFFLOADABLE_EVENTS = {"license_allocated": "license_allocation", "user_create": "user_created"}
# Settings of the cloud path (SQS, S3) and the callback, beside the provider's own. Where SQS
# and S3 requests go is not among them: AWS's endpoints for the region (or the site's).
AWS_FIELDS = ("aws_region", "aws_access_key_id", "callback_url")
AWS_SECRET_FIELDS = ("aws_secret_access_key",)
CALLBACK_SECRET = "callback_secret"
# Set by a site admin only: this company's SMTP host may be a private address.
ALLOW_PRIVATE_SMTP_HOST = "allow_private_smtp_host"


@dataclass(frozen=True)
class CompanyMailConfig:
    """Everything a mailer needs to send for one company, secrets decrypted."""

    company_id: int
    enabled: bool
    provider: str
    provider_config: dict[str, Any]
    sender_email: str
    sender_name: str | None
    chunk_size: int
    rate_per_s: float
    offloaded_events: tuple[str, ...]
    use_sqs: bool
    sqs_queue_url: str | None
    s3_bucket: str | None
    aws: dict[str, Any] = field(default_factory=dict)
    callback_secret: str = ""
    version: str = ""
    allow_private_smtp_host: bool = False

    def provider_settings(self) -> dict[str, Any]:
        """What `get_provider` takes: the provider's fields plus the sender."""
        return {
            **self.provider_config,
            "from_email": self.sender_email,
            **({"from_name": self.sender_name} if self.sender_name else {}),
        }


def stored_row(session: Session, company_id: int) -> CloudConf | None:
    return session.scalar(select(CloudConf).where(CloudConf.companyid == company_id))


def stored_plain(row: CloudConf | None) -> dict[str, Any]:
    value = json.loads(row.settings or "{}") if row is not None else {}
    return value if isinstance(value, dict) else {}


def stored_secrets(row: CloudConf | None, secret_key: str) -> dict[str, Any]:
    if row is None or not row.secrets:
        return {}
    value = json.loads(decrypt(row.secrets, secret_key))
    return value if isinstance(value, dict) else {}


def load_config(session: Session, company_id: int, secret_key: str) -> CompanyMailConfig | None:
    row = stored_row(session, company_id)
    if row is None:
        return None
    return to_config(row, secret_key)


def enabled_configs(session: Session, secret_key: str) -> list[CompanyMailConfig]:
    rows = session.scalars(select(CloudConf).where(CloudConf.enabled.is_(True)))
    return [to_config(row, secret_key) for row in rows]


def to_config(row: CloudConf, secret_key: str) -> CompanyMailConfig:
    plain = stored_plain(row)
    hidden = stored_secrets(row, secret_key)
    kind = PROVIDER_SETTINGS.get(row.provider)
    # Settings no longer in the schema (an old base_url, endpoint_url) are left out.
    provider_fields = {f.name for f in kind.config_schema} if kind else set()
    merged = {**plain, **hidden}
    return CompanyMailConfig(
        company_id=row.companyid,
        enabled=row.enabled,
        provider=row.provider,
        provider_config={k: v for k, v in merged.items() if k in provider_fields},
        sender_email=row.sender_email,
        sender_name=row.sender_name,
        chunk_size=row.chunk_size,
        rate_per_s=row.rate_per_s,
        offloaded_events=tuple(e for e in row.offloaded_events.split(",") if e),
        use_sqs=row.use_sqs,
        sqs_queue_url=row.sqs_queue_url,
        s3_bucket=row.s3_bucket,
        aws={k: merged[k] for k in (*AWS_FIELDS, *AWS_SECRET_FIELDS) if merged.get(k)},
        callback_secret=str(hidden.get(CALLBACK_SECRET, "")),
        version=row.timemodified.isoformat() if row.timemodified else "",
        allow_private_smtp_host=plain.get(ALLOW_PRIVATE_SMTP_HOST) is True,
    )


def masked_secrets(session: Session, company_id: int, secret_key: str) -> dict[str, str]:
    """The stored secrets as the admin page may show them."""
    row = stored_row(session, company_id)
    return {name: mask(str(value)) for name, value in stored_secrets(row, secret_key).items()}
