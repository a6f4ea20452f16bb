"""A company's email offload settings: read for sending, validated and saved from the admin page.

Provider settings are split by the provider's own schema: fields marked secret (passwords, API
keys), the AWS secret key and the cloud-callback key go into one encrypted JSON blob; the rest
are stored as plain JSON. Secrets are never handed to a page in full (`masked_secrets`).
"""

from __future__ import annotations

import json
import secrets as pysecrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.audit import record_audit
from common.mail.addresses import address_problem
from common.models.mail import CloudConf
from common.secrets import decrypt, encrypt, mask
from services.mailer.providers import PROVIDERS

# IOMAD email template names that can be offloaded, and the job type each becomes.
OFFLOADABLE_EVENTS = {"license_allocated": "license_allocation", "user_create": "user_created"}
# Settings of the cloud path (SQS, S3) and the callback, beside the provider's own.
AWS_FIELDS = ("aws_region", "aws_access_key_id", "aws_endpoint_url", "callback_url")
AWS_SECRET_FIELDS = ("aws_secret_access_key",)
CALLBACK_SECRET = "callback_secret"
MAX_CHUNK_SIZE = 1000
MAX_RATE_PER_S = 100_000


class ConfigInvalid(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


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

    def provider_settings(self) -> dict[str, Any]:
        """What `get_provider` takes: the provider's fields plus the sender."""
        return {
            **self.provider_config,
            "from_email": self.sender_email,
            **({"from_name": self.sender_name} if self.sender_name else {}),
        }


def _secret_names(provider: str) -> set[str]:
    cls = PROVIDERS.get(provider)
    schema = cls.config_schema if cls else ()
    return {f.name for f in schema if f.secret} | set(AWS_SECRET_FIELDS) | {CALLBACK_SECRET}


def _stored_secrets(row: CloudConf, secret_key: str) -> dict[str, Any]:
    if not row.secrets:
        return {}
    value = json.loads(decrypt(row.secrets, secret_key))
    return value if isinstance(value, dict) else {}


def load_config(session: Session, company_id: int, secret_key: str) -> CompanyMailConfig | None:
    row = session.scalar(select(CloudConf).where(CloudConf.companyid == company_id))
    if row is None:
        return None
    return _to_config(row, secret_key)


def enabled_configs(session: Session, secret_key: str) -> list[CompanyMailConfig]:
    rows = session.scalars(select(CloudConf).where(CloudConf.enabled.is_(True)))
    return [_to_config(row, secret_key) for row in rows]


def _to_config(row: CloudConf, secret_key: str) -> CompanyMailConfig:
    plain = json.loads(row.settings or "{}")
    hidden = _stored_secrets(row, secret_key)
    provider_fields = {f.name for f in PROVIDERS[row.provider].config_schema}
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
    )


def masked_secrets(session: Session, company_id: int, secret_key: str) -> dict[str, str]:
    """The stored secrets as the admin page may show them."""
    row = session.scalar(select(CloudConf).where(CloudConf.companyid == company_id))
    if row is None:
        return {}
    return {name: mask(str(value)) for name, value in _stored_secrets(row, secret_key).items()}


def validate(values: Mapping[str, Any]) -> list[str]:
    """Errors as "field: reason" for a complete settings dict (secrets already merged)."""
    errors: list[str] = []
    provider = values.get("provider")
    cls = PROVIDERS.get(str(provider))
    if cls is None:
        return [f"provider: must be one of {', '.join(sorted(PROVIDERS))}"]
    sender = str(values.get("sender_email") or "")
    problem = address_problem(sender) if sender else "required"
    if problem:
        errors.append(f"sender_email: {problem}")
    chunk_size = values.get("chunk_size")
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        errors.append(f"chunk_size: a whole number from 1 to {MAX_CHUNK_SIZE}")
    rate = values.get("rate_per_s")
    if not isinstance(rate, int | float) or not 0 <= rate <= MAX_RATE_PER_S:
        errors.append(f"rate_per_s: a number from 0 (no quota) to {MAX_RATE_PER_S}")
    unknown = set(values.get("offloaded_events") or ()) - set(OFFLOADABLE_EVENTS)
    if unknown:
        errors.append(f"offloaded_events: unknown event(s) {', '.join(sorted(unknown))}")
    if values.get("use_sqs"):
        url = str(values.get("sqs_queue_url") or "")
        if not url.startswith(("https://", "http://")):
            errors.append("sqs_queue_url: required for the cloud worker (an https:// queue URL)")
        if not values.get("aws_region"):
            errors.append("aws_region: required for the cloud worker")
    provider_config = dict(values.get("provider_config") or {})
    provider_config["from_email"] = sender or "sender@invalid.example"
    if values.get("sender_name"):
        provider_config["from_name"] = values["sender_name"]
    errors += [e for e in cls.validate_config(provider_config) if not e.startswith("from_")]
    return errors


def save_config(
    session: Session,
    company_id: int,
    values: Mapping[str, Any],
    *,
    secret_key: str,
    actor_id: int | None,
    ip: str | None = None,
) -> CompanyMailConfig:
    """Validate and store; a secret left blank keeps the stored one. Audited, never logged.

    ``values``: provider, enabled, sender_email, sender_name, chunk_size, rate_per_s,
    offloaded_events (list), use_sqs, sqs_queue_url, s3_bucket, aws_* and provider_config
    (the provider's own fields, secret ones included when changed).
    """
    row = session.scalar(select(CloudConf).where(CloudConf.companyid == company_id))
    provider = str(values.get("provider") or "")
    stored = _stored_secrets(row, secret_key) if row is not None else {}
    secret_names = _secret_names(provider)
    incoming = {**dict(values.get("provider_config") or {})}
    for name in (*AWS_FIELDS, *AWS_SECRET_FIELDS):
        if name in values:
            incoming[name] = values[name]
    hidden: dict[str, Any] = {
        k: v for k, v in stored.items() if k in secret_names and k not in incoming
    }
    plain: dict[str, Any] = {}
    for name, value in incoming.items():
        if value in (None, ""):
            if name in secret_names and name in stored:
                hidden[name] = stored[name]  # blank secret: keep what is stored
            continue
        (hidden if name in secret_names else plain)[name] = value
    hidden.setdefault(CALLBACK_SECRET, pysecrets.token_urlsafe(32))
    provider_fields = (
        {f.name for f in PROVIDERS[provider].config_schema} if provider in PROVIDERS else set()
    )
    merged = {
        **values,
        "provider_config": {k: v for k, v in {**plain, **hidden}.items() if k in provider_fields},
        **{k: v for k, v in {**plain, **hidden}.items() if k.startswith("aws_")},
    }
    errors = validate(merged)
    if errors:
        raise ConfigInvalid(errors)
    if row is None:
        row = CloudConf(companyid=company_id)
        session.add(row)
    before = {"enabled": row.enabled, "provider": row.provider} if row.id else {}
    row.enabled = bool(values.get("enabled"))
    row.provider = provider
    row.settings = json.dumps(plain, sort_keys=True)
    row.secrets = encrypt(json.dumps(hidden, sort_keys=True), secret_key)
    row.sender_email = str(values["sender_email"])
    row.sender_name = values.get("sender_name") or None
    row.chunk_size = int(values["chunk_size"])
    row.rate_per_s = float(values["rate_per_s"])
    row.offloaded_events = ",".join(sorted(values.get("offloaded_events") or ()))
    row.use_sqs = bool(values.get("use_sqs"))
    row.sqs_queue_url = values.get("sqs_queue_url") or None
    row.s3_bucket = values.get("s3_bucket") or None
    row.modifiedby = actor_id
    session.flush()
    record_audit(
        session,
        actor_id=actor_id,
        action="email_offload_saved",
        object_type="cloud_conf",
        object_id=company_id,
        company_id=company_id,
        ip=ip,
        # Names of the secrets that changed, never their values.
        details={
            "before": before,
            "enabled": row.enabled,
            "provider": provider,
            "secrets_changed": sorted(k for k in hidden if stored.get(k) != hidden[k]),
        },
    )
    session.refresh(row)
    return _to_config(row, secret_key)
