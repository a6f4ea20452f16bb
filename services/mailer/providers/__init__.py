"""Email providers the mailer sends through: SMTP, Amazon SES, SendGrid, Mailgun.

Importing the package registers every provider in PROVIDERS.
"""

from . import mailgun, sendgrid, ses, smtp  # noqa: F401  (each module registers its provider)
from .base import (
    Attachment,
    ConfigField,
    EmailProvider,
    OutgoingMessage,
    PermanentSendError,
    ProviderConfigError,
    ProviderThrottled,
    SendError,
    SendOutcome,
    TransientSendError,
)
from .registry import PROVIDERS, get_provider, register

__all__ = [
    "PROVIDERS",
    "Attachment",
    "ConfigField",
    "EmailProvider",
    "OutgoingMessage",
    "PermanentSendError",
    "ProviderConfigError",
    "ProviderThrottled",
    "SendError",
    "SendOutcome",
    "TransientSendError",
    "get_provider",
    "register",
]
