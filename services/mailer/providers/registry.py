"""The email provider kinds by type name; a provider module registers its class on import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from .base import EmailProvider, ProviderConfigError

PROVIDERS: dict[str, type[EmailProvider]] = {}

P = TypeVar("P", bound=type[EmailProvider])


def register(cls: P) -> P:
    if cls.type_name in PROVIDERS:
        raise ValueError(f"email provider {cls.type_name!r} is already registered")
    PROVIDERS[cls.type_name] = cls
    return cls


def get_provider(type_name: str, config: Mapping[str, Any]) -> EmailProvider:
    """A provider for a company's stored settings; ProviderConfigError lists what is wrong."""
    cls = PROVIDERS.get(type_name)
    if cls is None:
        raise ProviderConfigError([f"type: unknown email provider {type_name!r}"])
    errors = cls.validate_config(config)
    if errors:
        raise ProviderConfigError(errors)
    return cls(config)
