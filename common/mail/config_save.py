"""Checking and saving a company's email offload settings (the admin page, tests, benchmarks).

A secret left blank keeps the stored one, except when a setting that decides where the secret
is sent changed in the same save: another provider, SMTP host or port, Mailgun or SES region,
the cloud path's AWS region or SQS queue. Then the stored secret is dropped and, where one is
needed, the save fails until it is entered again: a stored key is never sent somewhere new.
Only a site admin may let a company's SMTP host be a private address. Every problem is a
FieldError; all of them are raised together and nothing is written. When the settings are
valid and enabled, an optional connection check (`common.mail.provider_check`) talks to the
provider with the complete configuration (stored secrets merged in) before anything is
written: a wrong port, host or key fails the save with the field to fix.
"""

from __future__ import annotations

import json
import re
import secrets as pysecrets
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from common.audit import record_audit
from common.errors import FieldError, raise_all
from common.mail.addresses import address_problem
from common.mail.config import (
    ALLOW_PRIVATE_SMTP_HOST,
    AWS_FIELDS,
    AWS_SECRET_FIELDS,
    CALLBACK_SECRET,
    OFFLOADABLE_EVENTS,
    CompanyMailConfig,
    stored_plain,
    stored_row,
    stored_secrets,
    to_config,
)
from common.mail.provider_settings import ProviderSettings, provider_settings
from common.mail.site import MailSite
from common.models.mail import CloudConf
from common.secrets import encrypt

# (provider, complete provider configuration, the company's mail site) -> problems found
ConnectionCheck = Callable[[str, Mapping[str, Any], MailSite], list[FieldError]]
MAX_CHUNK_SIZE = 1000
MAX_RATE_PER_S = 100_000
# The AWS settings whose change drops the stored AWS secret key.
AWS_DESTINATION_FIELDS = ("aws_region", "sqs_queue_url")
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_SQS_QUEUE_URL = re.compile(
    r"https://(sqs\.[a-z0-9-]+|[a-z0-9-]+\.queue)\.amazonaws\.com(\.cn)?/\d{12}/[\w-]{1,80}(\.fifo)?"
)
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def save_config(
    session: Session,
    company_id: int,
    values: Mapping[str, Any],
    *,
    secret_key: str,
    actor_id: int | None,
    actor_is_site_admin: bool,
    site: MailSite | None = None,
    ip: str | None = None,
    connection_check: ConnectionCheck | None = None,
    prior_errors: list[FieldError] | None = None,
) -> CompanyMailConfig:
    """Check and store a company's settings; audited (names of changed secrets, never values).

    ``values``: provider, enabled, sender_email, sender_name, chunk_size, rate_per_s,
    offloaded_events (list), use_sqs, sqs_queue_url, s3_bucket, aws_* and provider_config
    (the provider's own fields, secret ones when entered). `allow_private_smtp_host` may be
    given by a site admin only; left out, the stored value stays. ``connection_check``, when
    given, runs on valid, enabled settings before anything is written. ``prior_errors``: what
    the form already found (a number that is not one): raised with the rest, and a field
    named there is not reported twice.
    """
    site = site or MailSite()
    kind = provider_settings(str(values.get("provider") or ""))
    row = stored_row(session, company_id)
    plain_before, hidden_before = stored_plain(row), stored_secrets(row, secret_key)
    errors: list[FieldError] = []
    allow_private = plain_before.get(ALLOW_PRIVATE_SMTP_HOST) is True
    if ALLOW_PRIVATE_SMTP_HOST in values:
        if actor_is_site_admin:
            allow_private = bool(values[ALLOW_PRIVATE_SMTP_HOST])
        else:
            reason = "only a site admin may allow a private SMTP host"
            errors.append(FieldError(ALLOW_PRIVATE_SMTP_HOST, reason))
    incoming = dict(values.get("provider_config") or {})
    incoming.update({name: values[name] for name in (*AWS_FIELDS, *AWS_SECRET_FIELDS)
                     if name in values})  # fmt: skip
    secret_names = kind.secret_names() | set(AWS_SECRET_FIELDS) | {CALLBACK_SECRET}
    dropped = _dropped_secrets(kind, row, plain_before, values, incoming)
    hidden = {k: v for k, v in hidden_before.items() if k in secret_names and k not in dropped}
    plain: dict[str, Any] = {}
    for name, value in incoming.items():
        if value not in (None, ""):
            (hidden if name in secret_names else plain)[name] = value
    hidden.setdefault(CALLBACK_SECRET, pysecrets.token_urlsafe(32))
    provider_fields = {f.name for f in kind.config_schema}
    provider_config = {k: v for k, v in {**plain, **hidden}.items() if k in provider_fields}
    found = check_values(
        {**values, **{k: v for k, v in {**plain, **hidden}.items() if k.startswith("aws_")}},
        kind,
        provider_config,
        site=site.for_company(allow_private),
    )
    errors += [_enter_again(e, dropped) if e.field in dropped else e for e in found]
    unknown = set(values.get("provider_config") or ()) - provider_fields
    errors += [FieldError(name, "unknown setting") for name in sorted(unknown)]
    prior = list(prior_errors or ())
    named = {error.field for error in prior}
    raise_all([*prior, *(error for error in errors if error.field not in named)])
    checked = connection_check is not None and bool(values.get("enabled"))
    if connection_check is not None and checked:
        company_site = site.for_company(allow_private)  # the same SSRF rules as the mailers
        raise_all(connection_check(kind.type_name, provider_config, company_site))
    if row is None:
        row = CloudConf(companyid=company_id)
        session.add(row)
    before = {"enabled": row.enabled, "provider": row.provider} if row.id else {}
    if allow_private:
        plain[ALLOW_PRIVATE_SMTP_HOST] = True
    row.enabled = bool(values.get("enabled"))
    row.provider = kind.type_name
    row.settings = _json(plain)
    row.secrets = encrypt(_json(hidden), secret_key)
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
        session, actor_id=actor_id, action="email_offload_saved", object_type="cloud_conf",
        object_id=company_id, company_id=company_id, ip=ip,
        details={
            "before": before, "enabled": row.enabled, "provider": kind.type_name,
            "secrets_changed": sorted(k for k in hidden if hidden_before.get(k) != hidden[k]),
            "secrets_dropped": sorted(k for k in dropped if k in hidden_before),
            ALLOW_PRIVATE_SMTP_HOST: allow_private, "connection_checked": checked,
        },
    )  # fmt: skip
    session.refresh(row)
    return to_config(row, secret_key)


def check_values(
    values: Mapping[str, Any],
    kind: type[ProviderSettings],
    provider_config: Mapping[str, Any],
    *,
    site: MailSite,
) -> list[FieldError]:
    """Every problem of a complete settings dict (stored secrets already merged in)."""
    errors: list[FieldError] = []
    sender = str(values.get("sender_email") or "")
    problem = address_problem(sender) if sender else "required"
    if problem:
        errors.append(FieldError("sender_email", problem))
    if any(c in str(values.get("sender_name") or "") for c in "\r\n"):
        errors.append(FieldError("sender_name", "one line of text"))
    chunk_size = values.get("chunk_size")
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        errors.append(FieldError("chunk_size", f"a whole number from 1 to {MAX_CHUNK_SIZE}"))
    rate = values.get("rate_per_s")
    if not isinstance(rate, int | float) or not 0 <= rate <= MAX_RATE_PER_S:
        reason = f"a number from 0 (no quota) to {MAX_RATE_PER_S}"
        errors.append(FieldError("rate_per_s", reason))
    unknown = set(values.get("offloaded_events") or ()) - set(OFFLOADABLE_EVENTS)
    if unknown:
        reason = f"unknown event(s) {', '.join(sorted(unknown))}"
        errors.append(FieldError("offloaded_events", reason))
    errors += _aws_problems(values, site)
    config = dict(provider_config)
    config["from_email"] = sender or "sender@invalid.example"
    if values.get("sender_name"):
        config["from_name"] = values["sender_name"]
    # The sender was checked above, as sender_email.
    found = [e for e in kind.validate(config) if not e.field.startswith("from_")]
    allow_private = site.allow_private_smtp_hosts
    errors += found or kind.destination_problems(config, allow_private_hosts=allow_private)
    return errors


def _aws_problems(values: Mapping[str, Any], site: MailSite) -> list[FieldError]:
    errors: list[FieldError] = []
    url = str(values.get("sqs_queue_url") or "")
    region = str(values.get("aws_region") or "")
    if values.get("use_sqs"):
        if not url:
            errors.append(FieldError("sqs_queue_url", "required for the cloud worker"))
        if not region:
            errors.append(FieldError("aws_region", "required for the cloud worker"))
    if url:
        if site.aws_endpoint_url:
            valid = url.startswith(f"{site.aws_endpoint_url}/")
        else:
            valid = _SQS_QUEUE_URL.fullmatch(url) is not None
        if not valid:
            reason = (
                "an SQS queue URL such as https://sqs.eu-west-1.amazonaws.com/123456789012/mail"
            )
            errors.append(FieldError("sqs_queue_url", reason))
    if region and not _AWS_REGION.fullmatch(region):
        errors.append(FieldError("aws_region", "an AWS region such as eu-west-1"))
    bucket = str(values.get("s3_bucket") or "")
    if bucket and not _S3_BUCKET.fullmatch(bucket):
        errors.append(
            FieldError("s3_bucket", "an S3 bucket name (lower-case letters, digits, - and .)")
        )
    callback = str(values.get("callback_url") or "")
    if callback and not callback.startswith(("https://", "http://")):
        errors.append(FieldError("callback_url", "must start with https:// or http://"))
    if bool(values.get("aws_access_key_id")) != bool(values.get("aws_secret_access_key")):
        reason = "aws_access_key_id and aws_secret_access_key go together"
        errors.append(FieldError("aws_secret_access_key", reason))
    return errors


def _dropped_secrets(
    kind: type[ProviderSettings],
    row: CloudConf | None,
    plain_before: Mapping[str, Any],
    values: Mapping[str, Any],
    incoming: Mapping[str, Any],
) -> dict[str, str]:
    """Stored secrets that no longer apply, each with the setting whose change dropped it."""
    if row is None:
        return {}
    dropped: dict[str, str] = {}
    default = {f.name: f.default for f in kind.config_schema}
    changed = [
        name
        for name in kind.destination_fields
        if _norm(plain_before.get(name), default[name]) != _norm(incoming.get(name), default[name])
    ]
    moved = "provider" if row.provider != kind.type_name else next(iter(changed), None)
    if moved is not None:
        dropped.update(dict.fromkeys(kind.secret_names(), moved))
    before_aws = {"aws_region": plain_before.get("aws_region"), "sqs_queue_url": row.sqs_queue_url}
    after_aws = {
        "aws_region": incoming.get("aws_region"),
        "sqs_queue_url": values.get("sqs_queue_url"),
    }
    for name in AWS_DESTINATION_FIELDS:
        if _norm(before_aws[name], None) != _norm(after_aws[name], None):
            dropped.update(dict.fromkeys(AWS_SECRET_FIELDS, name))
            break
    return dropped


def _norm(value: Any, default: Any) -> Any:
    value = default if value in (None, "") else value
    return value.strip().lower() if isinstance(value, str) else value


def _enter_again(error: FieldError, dropped: Mapping[str, str]) -> FieldError:
    return FieldError(error.field, f"enter it again: the {dropped[error.field]} changed")


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)
