"""Email providers the mailer sends through: SMTP, Amazon SES, SendGrid, Mailgun.

Importing the package registers every provider in PROVIDERS. Their settings (fields and rules)
live in `common.mail.provider_settings`, which the settings form reads too.
"""

from . import mailgun, sendgrid, ses, smtp  # noqa: F401  (each module registers its provider)
from .base import (
    Attachment,
    EmailProvider,
    OutgoingMessage,
    PermanentSendError,
    ProviderThrottled,
    SendError,
    SendOutcome,
    TransientSendError,
)
from .registry import PROVIDERS, get_provider, register

__all__ = [
    "PROVIDERS",
    "Attachment",
    "EmailProvider",
    "OutgoingMessage",
    "PermanentSendError",
    "ProviderThrottled",
    "SendError",
    "SendOutcome",
    "TransientSendError",
    "get_provider",
    "register",
]
