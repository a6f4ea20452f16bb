"""What every email provider takes and returns, and the errors the mailer turns into NAK/term.

A provider gets already-rendered messages (one per recipient) and reports one outcome per
recipient. Whole-batch trouble that is worth retrying later is raised (ProviderThrottled,
TransientSendError) so the caller can NAK the chunk with a delay; a recipient the provider
refused for good comes back as a ``failed`` outcome and does not hold up the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from common.errors import FieldError
from common.mail.addresses import address_problem
from common.mail.failures import invalid_address
from common.mail.provider_settings import ConfigField, ProviderSettings
from common.mail.site import MailSite


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class OutgoingMessage:
    recipient_id: int
    to: str
    subject: str
    html: str
    text: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: Sequence[Attachment] = ()


# "skipped": never handed to a provider (the address unsubscribed); the mailer sets it.
SendStatus = Literal["sent", "failed", "retry", "skipped"]


@dataclass(frozen=True)
class SendOutcome:
    recipient_id: int
    status: SendStatus
    provider_message_id: str | None = None
    error: str | None = None  # a fixed text of common.mail.failures: users read it
    # Set on "retry" outcomes when the provider said how long to wait.
    retry_after_s: float | None = None
    detail: str | None = None  # what the provider said: for the log, never stored


class SendError(Exception):
    """A provider call that failed as a whole.

    ``reason`` is one of the fixed texts of `common.mail.failures` (what users read);
    ``detail`` is what the provider answered, for the mailer's log only.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class ProviderThrottled(SendError):
    def __init__(self, reason: str, retry_after_s: float | None = None, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.retry_after_s = retry_after_s


class TransientSendError(SendError):
    """Network trouble or a provider-side (5xx) error: the same request may succeed later."""


class PermanentSendError(SendError):
    """The provider refused the request for a reason retrying will not fix (bad key, sender)."""


class BatchOutcomes:
    """The outcomes of one send_batch call, which may take several provider requests.

    Once any recipient has been accepted, a later request that fails as a whole must not be
    raised: the caller would retry the entire batch and send the accepted recipients twice.
    From then on such a failure turns every recipient still without an outcome into a retry.
    """

    def __init__(self, messages: Sequence[OutgoingMessage]) -> None:
        self._messages = list(messages)
        if len({m.recipient_id for m in self._messages}) != len(self._messages):
            raise ValueError("recipient_id must be unique within a batch")
        self._outcomes: dict[int, SendOutcome] = {}

    def sent(self, message: OutgoingMessage, provider_message_id: str | None) -> None:
        self._record(SendOutcome(message.recipient_id, "sent", provider_message_id))

    def failed(self, message: OutgoingMessage, error: str, detail: str = "") -> None:
        self._record(SendOutcome(message.recipient_id, "failed", error=error, detail=detail))

    def retry(
        self,
        message: OutgoingMessage,
        error: str,
        retry_after_s: float | None = None,
        detail: str = "",
    ) -> None:
        outcome = SendOutcome(
            message.recipient_id, "retry", error=error, retry_after_s=retry_after_s, detail=detail
        )
        self._record(outcome)

    def pending(self) -> list[OutgoingMessage]:
        return [m for m in self._messages if m.recipient_id not in self._outcomes]

    def abort(self, error: SendError) -> None:
        """A request failed as a whole: raise it, or hand back what is left as retries."""
        if not any(o.status == "sent" for o in self._outcomes.values()):
            raise error
        retry_after_s = error.retry_after_s if isinstance(error, ProviderThrottled) else None
        for message in self.pending():
            self.retry(message, error.reason, retry_after_s, error.detail)

    def outcomes(self) -> list[SendOutcome]:
        missing = self.pending()
        if missing:
            ids = [m.recipient_id for m in missing]
            raise RuntimeError(f"no outcome recorded for recipients {ids}")
        return [self._outcomes[m.recipient_id] for m in self._messages]

    def _record(self, outcome: SendOutcome) -> None:
        self._outcomes[outcome.recipient_id] = outcome


class EmailProvider(ABC):
    # The provider kind's settings (fields and rules), shared with the settings form; its
    # type name and schema are the class's own.
    settings: ClassVar[type[ProviderSettings]]
    type_name: ClassVar[str]
    config_schema: ClassVar[tuple[ConfigField, ...]]
    # Most messages one provider request (for SMTP, one connection) carries; send_batch
    # splits longer batches, so a caller wanting one request per batch stays within it.
    max_batch_size: ClassVar[int]

    def __init__(self, config: Mapping[str, Any], site: MailSite | None = None) -> None:
        """``config`` has passed validate_config; unset fields take their defaults. ``site``
        says where requests go: the fixed endpoints unless the site overrides them."""
        self.site = site or MailSite()
        self.config = {
            f.name: f.default if config.get(f.name) in (None, "") else config[f.name]
            for f in self.config_schema
        }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "settings" in cls.__dict__:
            cls.type_name = cls.settings.type_name
            cls.config_schema = cls.settings.config_schema

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> list[FieldError]:
        """Every problem of ``config``; empty when the configuration is usable. Where requests
        go is checked when connecting (an SMTP host is resolved and checked then)."""
        return cls.settings.validate(config)

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendOutcome]:
        """Send each message once; one outcome per message, in the order given."""
        batch = BatchOutcomes(messages)
        for message in messages:
            problem = address_problem(message.to)
            if problem:
                batch.failed(message, invalid_address(problem))
        try:
            for request in self._plan_requests(batch.pending()):
                await self._send_request(request, batch)
        except SendError as exc:
            batch.abort(exc)
        return batch.outcomes()

    @abstractmethod
    def _plan_requests(self, messages: list[OutgoingMessage]) -> Iterable[list[OutgoingMessage]]:
        """Split deliverable messages into provider requests."""

    @abstractmethod
    async def _send_request(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        """Make one provider request, recording each recipient's outcome in ``batch``.

        Raise a SendError when the request failed as a whole.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release connections held between batches."""
