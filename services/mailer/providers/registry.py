"""The email provider kinds by type name; a provider module registers its class on import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from common.errors import FieldError, raise_all
from common.mail.site import MailSite

from .base import EmailProvider

PROVIDERS: dict[str, type[EmailProvider]] = {}

P = TypeVar("P", bound=type[EmailProvider])


def register(cls: P) -> P:
    type_name = cls.settings.type_name
    if type_name in PROVIDERS:
        raise ValueError(f"email provider {type_name!r} is already registered")
    PROVIDERS[type_name] = cls
    return cls


def get_provider(
    type_name: str, config: Mapping[str, Any], site: MailSite | None = None
) -> EmailProvider:
    """A provider for a company's stored settings; FieldError says what is wrong with them."""
    cls = PROVIDERS.get(type_name)
    if cls is None:
        raise FieldError("provider", f"unknown email provider {type_name!r}")
    raise_all(cls.validate_config(config))
    return cls(config, site)
