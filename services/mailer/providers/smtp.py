"""SMTP relay: one connection per request of up to ``max_batch_size`` messages.

Each message goes in its own mail transaction on the shared connection, so a refused
recipient (5xx: failed, 4xx: retry) does not affect the others. A 421 means the server is
closing the session (busy or rate-limited), which is throttling for the whole connection.
The host is resolved and checked before each connection (`common.mail.smtp_hosts`), and the
connection goes to the checked address; the relay's replies reach only the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiosmtplib

from common.mail import failures
from common.mail.provider_settings import SmtpSettings
from common.mail.smtp_hosts import HostNotAllowed, open_connection, smtp_targets

from .base import (
    BatchOutcomes,
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
AUTHENTICATION_FAILED = (530, 534, 535, 538)
MESSAGE_TOO_LARGE = 552


@register
class SmtpProvider(EmailProvider):
    settings = SmtpSettings
    # Messages per connection: relays commonly cap a session at about a hundred messages.
    max_batch_size = 100

    def _plan_requests(self, messages: list[OutgoingMessage]) -> Iterable[list[OutgoingMessage]]:
        size = self.max_batch_size
        return [messages[start : start + size] for start in range(0, len(messages), size)]

    async def _send_request(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        client = await self._connect()
        try:
            for message in request:
                await self._deliver(client, message, batch)
        except asyncio.CancelledError:
            # A stopping mailer gave up on this request (its shutdown grace ran out): no
            # polite QUIT, which would wait on the very server that stalled.
            client.close()
            raise
        finally:
            await _quit(client)

    async def close(self) -> None:
        """Nothing to release: each request opens and quits its own connection."""

    async def _connect(self) -> aiosmtplib.SMTP:
        host, port = self.config["host"], self.config["port"]
        try:
            targets = await smtp_targets(
                host, port, allow_private=self.site.allow_private_smtp_hosts
            )
        except HostNotAllowed as exc:
            raise PermanentSendError(failures.HOST_NOT_ALLOWED, str(exc)) from exc
        except (OSError, UnicodeError) as exc:
            raise TransientSendError(failures.UNREACHABLE, f"{host}: {exc}") from exc
        try:
            sock = await open_connection(targets, self.config["timeout_s"])
        except OSError as exc:
            raise TransientSendError(failures.UNREACHABLE, f"{host}:{port}: {exc}") from exc
        security = self.config["security"]
        client = aiosmtplib.SMTP(
            hostname=host,  # the name the certificate is checked against
            sock=sock,
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
            if exc.code in AUTHENTICATION_FAILED:
                raise PermanentSendError(failures.CREDENTIALS_REFUSED, _reply(exc)) from exc
            raise _session_error(exc.code, failures.SESSION_FAILED, _reply(exc)) from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            raise TransientSendError(failures.UNREACHABLE, f"{host}:{port}: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            # e.g. STARTTLS required but not offered, or not an SMTP server at all.
            raise PermanentSendError(failures.SESSION_FAILED, f"{host}:{port}: {exc}") from exc
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
            batch.failed(message, failures.MESSAGE_NOT_BUILT, str(exc))
            return
        try:
            await client.send_message(
                mime, sender=self.config["from_email"], recipients=[message.to]
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0]
            _record_refusal(message, refusal.code, _reply(refusal), batch, data=False)
        except aiosmtplib.SMTPDataError as exc:
            _record_refusal(message, exc.code, _reply(exc), batch, data=True)
        except aiosmtplib.SMTPResponseException as exc:
            # MAIL FROM and friends: about the sender or the session, not this recipient.
            raise _session_error(exc.code, failures.SENDER_REFUSED, _reply(exc)) from exc
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
            # Whether the server took this message is unknown; retrying is the safe side.
            raise TransientSendError(failures.CONNECTION_LOST, str(exc)) from exc
        else:
            batch.sent(message, mime["Message-ID"])


def _record_refusal(
    message: OutgoingMessage, code: int, reply: str, batch: BatchOutcomes, *, data: bool
) -> None:
    if code == SERVICE_CLOSING:
        raise ProviderThrottled(failures.RATE_LIMITED, detail=reply)
    if 400 <= code < 500:
        batch.retry(message, failures.RECIPIENT_DEFERRED, detail=reply)
    elif code == MESSAGE_TOO_LARGE and data:
        batch.failed(message, failures.MESSAGE_TOO_LARGE, reply)
    else:
        reason = failures.MESSAGE_REFUSED if data else failures.RECIPIENT_REFUSED
        batch.failed(message, reason, reply)


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"


def _session_error(code: int, refused: str, reply: str) -> SendError:
    if code == SERVICE_CLOSING:
        return ProviderThrottled(failures.RATE_LIMITED, detail=reply)
    if 400 <= code < 500:
        return TransientSendError(failures.TEMPORARY, reply)
    return PermanentSendError(refused, reply)


async def _quit(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        # The messages are already handed over; a failed goodbye changes nothing for them.
        client.close()
