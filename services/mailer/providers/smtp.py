"""SMTP relay: one connection per request of up to ``max_batch_size`` messages.

Each message goes in its own mail transaction on the shared connection, so a refused
recipient (5xx: failed, 4xx: retry) does not affect the others. A 421 means the server is
closing the session (busy or rate-limited), which is throttling for the whole connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aiosmtplib

from .base import (
    SENDER_FIELDS,
    BatchOutcomes,
    ConfigField,
    EmailProvider,
    OutgoingMessage,
    PermanentSendError,
    ProviderThrottled,
    SendError,
    TransientSendError,
)
from .mime import build_mime
from .registry import register

SERVICE_CLOSING = 421


@register
class SmtpProvider(EmailProvider):
    type_name = "smtp"
    # Messages per connection: relays commonly cap a session at about a hundred messages.
    max_batch_size = 100
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
    def _check_config_rules(cls, config: Mapping[str, Any]) -> list[str]:
        errors = super()._check_config_rules(config)
        if not 1 <= config.get("port", 587) <= 65535:
            errors.append("port: must be between 1 and 65535")
        if bool(config.get("username")) != bool(config.get("password")):
            errors.append("password: username and password go together")
        return errors

    def _plan_requests(self, messages: list[OutgoingMessage]) -> Iterable[list[OutgoingMessage]]:
        size = self.max_batch_size
        return [messages[start : start + size] for start in range(0, len(messages), size)]

    async def _send_request(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        client = await self._connect()
        try:
            for message in request:
                await self._deliver(client, message, batch)
        finally:
            await _quit(client)

    async def close(self) -> None:
        """Nothing to release: each request opens and quits its own connection."""

    async def _connect(self) -> aiosmtplib.SMTP:
        security = self.config["security"]
        client = aiosmtplib.SMTP(
            hostname=self.config["host"],
            port=self.config["port"],
            username=self.config["username"] or None,
            password=self.config["password"] or None,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            validate_certs=self.config["validate_certs"],
            timeout=self.config["timeout_s"],
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            error = f"SMTP server refused the session: {_reply(exc)}"
            raise _session_error(exc.code, error) from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            raise TransientSendError(f"SMTP server unreachable: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            # e.g. STARTTLS required but not offered: a settings problem.
            raise PermanentSendError(f"SMTP session setup failed: {exc}") from exc
        return client

    async def _deliver(
        self, client: aiosmtplib.SMTP, message: OutgoingMessage, batch: BatchOutcomes
    ) -> None:
        try:
            mime = build_mime(
                message,
                from_email=self.config["from_email"],
                from_name=self.config["from_name"],
                reply_to=self.config["reply_to"],
            )
        except ValueError as exc:
            batch.failed(message, f"message cannot be built: {exc}")
            return
        try:
            await client.send_message(
                mime, sender=self.config["from_email"], recipients=[message.to]
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0]
            _record_refusal(message, refusal.code, _reply(refusal), batch)
        except aiosmtplib.SMTPDataError as exc:
            _record_refusal(message, exc.code, _reply(exc), batch)
        except aiosmtplib.SMTPResponseException as exc:
            # MAIL FROM and friends: about the sender or the session, not this recipient.
            error = f"SMTP server refused the sender: {_reply(exc)}"
            raise _session_error(exc.code, error) from exc
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
            # Whether the server took this message is unknown; retrying is the safe side.
            raise TransientSendError(f"SMTP connection lost: {exc}") from exc
        else:
            batch.sent(message, mime["Message-ID"])


def _record_refusal(message: OutgoingMessage, code: int, error: str, batch: BatchOutcomes) -> None:
    if code == SERVICE_CLOSING:
        raise ProviderThrottled(f"SMTP server closed the session: {error}")
    if 400 <= code < 500:
        batch.retry(message, error)
    else:
        batch.failed(message, error)


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"


def _session_error(code: int, error: str) -> SendError:
    if code == SERVICE_CLOSING:
        return ProviderThrottled(error)
    if 400 <= code < 500:
        return TransientSendError(error)
    return PermanentSendError(error)


async def _quit(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        # The messages are already handed over; a failed goodbye changes nothing for them.
        client.close()
