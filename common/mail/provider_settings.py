"""Each email provider kind's settings: the fields a company fills in and the rules between
them, registered by provider type name.

The settings form and the company configuration (`common.mail.config_save`) read these; the
mailer's sending classes (`services/mailer/providers`) take their schema from here. Where a
provider's requests go is not a company setting: SES's endpoint follows from the region,
SendGrid and Mailgun have fixed URLs (Mailgun's by region), and an SMTP host must be a public
address (`common.mail.smtp_hosts`). Only the site overrides the URLs, for test doubles
(`common.mail.site`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from common.errors import FieldError
from common.mail.addresses import address_problem
from common.mail.smtp_hosts import host_problem, syntax_problem

SENDGRID_BASE_URL = "https://api.sendgrid.com"
MAILGUN_BASE_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
# AWS region names: us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, …
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_DOMAIN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})+")


@dataclass(frozen=True)
class ConfigField:
    """One provider setting. Secret ones are stored encrypted and never shown back in full."""

    name: str
    required: bool = False
    secret: bool = False
    kind: type = str
    default: Any = None
    choices: tuple[str, ...] = ()


# Every provider sends as the company's configured sender.
SENDER_FIELDS = (
    ConfigField("from_email", required=True),
    ConfigField("from_name"),
    ConfigField("reply_to"),
)


class ProviderSettings:
    """A provider kind's settings; subclasses list their fields and add their rules."""

    type_name: ClassVar[str]
    config_schema: ClassVar[tuple[ConfigField, ...]]
    # Settings that decide where the provider's secrets are sent: a change drops the stored
    # secrets unless new ones come with it.
    destination_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def secret_names(cls) -> set[str]:
        return {f.name for f in cls.config_schema if f.secret}

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> list[FieldError]:
        """Every problem of a complete configuration; empty when it is usable.

        Where the settings send requests is checked apart (`destination_problems`): when they
        are saved, and by the sending class each time it connects.
        """
        known = {f.name for f in cls.config_schema}
        errors = [FieldError(name, "unknown setting") for name in config if name not in known]
        for spec in cls.config_schema:
            value = config.get(spec.name)
            if value is None or value == "":
                if spec.required:
                    errors.append(FieldError(spec.name, "required"))
            elif not _is_kind(value, spec.kind):
                errors.append(FieldError(spec.name, f"must be {_KIND_NAMES[spec.kind]}"))
            elif spec.choices and value not in spec.choices:
                errors.append(FieldError(spec.name, f"must be one of {', '.join(spec.choices)}"))
        if not errors:
            errors += cls.rules(config)
        return errors

    @classmethod
    def destination_problems(
        cls, config: Mapping[str, Any], *, allow_private_hosts: bool
    ) -> list[FieldError]:
        """Why the configured host may not be sent to (a complete, valid configuration)."""
        return []

    @classmethod
    def rules(cls, config: Mapping[str, Any]) -> list[FieldError]:
        """Rules beyond single fields (addresses, hosts, settings that go together)."""
        errors = []
        for name in ("from_email", "reply_to"):
            problem = address_problem(str(config[name])) if config.get(name) else None
            if problem:
                errors.append(FieldError(name, problem))
        return errors


PROVIDER_SETTINGS: dict[str, type[ProviderSettings]] = {}
S = TypeVar("S", bound=type[ProviderSettings])


def register(cls: S) -> S:
    if cls.type_name in PROVIDER_SETTINGS:
        raise ValueError(f"email provider {cls.type_name!r} is already registered")
    PROVIDER_SETTINGS[cls.type_name] = cls
    return cls


def provider_settings(type_name: str) -> type[ProviderSettings]:
    """The settings of a provider kind; FieldError on `provider` for an unknown one."""
    cls = PROVIDER_SETTINGS.get(type_name)
    if cls is None:
        names = ", ".join(sorted(PROVIDER_SETTINGS))
        raise FieldError("provider", f"must be one of {names}")
    return cls


@register
class SesSettings(ProviderSettings):
    type_name = "ses"
    destination_fields = ("region",)
    config_schema = (
        ConfigField("region", required=True),
        ConfigField("access_key_id"),
        ConfigField("secret_access_key", secret=True),
        ConfigField("api", default="v1_bulk", choices=("v1_bulk", "v2")),
        ConfigField("configuration_set"),
        ConfigField("template_name", default="manireports-passthrough"),
        *SENDER_FIELDS,
    )

    @classmethod
    def rules(cls, config: Mapping[str, Any]) -> list[FieldError]:
        errors = super().rules(config)
        if not _AWS_REGION.fullmatch(config["region"]):
            errors.append(FieldError("region", "an AWS region such as eu-west-1"))
        if bool(config.get("access_key_id")) != bool(config.get("secret_access_key")):
            errors.append(
                FieldError(
                    "secret_access_key",
                    "access_key_id and secret_access_key go together "
                    "(leave both empty to use the instance's AWS credentials)",
                )
            )
        return errors


@register
class SendGridSettings(ProviderSettings):
    type_name = "sendgrid"
    config_schema = (
        ConfigField("api_key", required=True, secret=True),
        ConfigField("timeout_s", kind=float, default=30.0),
        *SENDER_FIELDS,
    )


@register
class MailgunSettings(ProviderSettings):
    type_name = "mailgun"
    destination_fields = ("region",)
    config_schema = (
        ConfigField("api_key", required=True, secret=True),
        ConfigField("domain", required=True),
        ConfigField("region", default="us", choices=tuple(MAILGUN_BASE_URLS)),
        ConfigField("timeout_s", kind=float, default=30.0),
        *SENDER_FIELDS,
    )

    @classmethod
    def rules(cls, config: Mapping[str, Any]) -> list[FieldError]:
        errors = super().rules(config)
        if not _DOMAIN.fullmatch(config["domain"]):
            errors.append(FieldError("domain", "a sending domain such as mg.example.com"))
        return errors


@register
class SmtpSettings(ProviderSettings):
    type_name = "smtp"
    destination_fields = ("host", "port")
    config_schema = (
        ConfigField("host", required=True),
        ConfigField("port", kind=int, default=587),
        ConfigField("security", default="starttls", choices=("starttls", "tls", "none")),
        ConfigField("username"),
        ConfigField("password", secret=True),
        ConfigField("validate_certs", kind=bool, default=True),
        ConfigField("timeout_s", kind=float, default=30.0),
        *SENDER_FIELDS,
    )

    @classmethod
    def rules(cls, config: Mapping[str, Any]) -> list[FieldError]:
        errors = super().rules(config)
        problem = syntax_problem(config["host"])
        if problem:
            errors.append(FieldError("host", problem))
        if not 1 <= config.get("port", 587) <= 65535:
            errors.append(FieldError("port", "must be between 1 and 65535"))
        if bool(config.get("username")) != bool(config.get("password")):
            errors.append(FieldError("password", "username and password go together"))
        return errors

    @classmethod
    def destination_problems(
        cls, config: Mapping[str, Any], *, allow_private_hosts: bool
    ) -> list[FieldError]:
        problem = host_problem(config["host"], allow_private=allow_private_hosts)
        return [FieldError("host", problem)] if problem else []


_KIND_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def _is_kind(value: Any, kind: type) -> bool:
    # bool is an int subclass; a port of True is a mistake, not a number.
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind)
