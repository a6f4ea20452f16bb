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

from common.mail.addresses import address_problem


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


SendStatus = Literal["sent", "failed", "retry"]


@dataclass(frozen=True)
class SendOutcome:
    recipient_id: int
    status: SendStatus
    provider_message_id: str | None = None
    error: str | None = None
    # Set on "retry" outcomes when the provider said how long to wait.
    retry_after_s: float | None = None


class SendError(Exception):
    """A provider call that failed as a whole."""


class ProviderThrottled(SendError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TransientSendError(SendError):
    """Network trouble or a provider-side (5xx) error: the same request may succeed later."""


class PermanentSendError(SendError):
    """The provider refused the request for a reason retrying will not fix (bad key, sender)."""


class ProviderConfigError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ConfigField:
    """One provider setting. Secret ones are stored encrypted and never shown back in full."""

    name: str
    required: bool = False
    secret: bool = False
    kind: type = str
    default: Any = None
    choices: tuple[str, ...] = ()


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

    def failed(self, message: OutgoingMessage, error: str) -> None:
        self._record(SendOutcome(message.recipient_id, "failed", error=error))

    def retry(
        self, message: OutgoingMessage, error: str, retry_after_s: float | None = None
    ) -> None:
        self._record(
            SendOutcome(message.recipient_id, "retry", error=error, retry_after_s=retry_after_s)
        )

    def pending(self) -> list[OutgoingMessage]:
        return [m for m in self._messages if m.recipient_id not in self._outcomes]

    def abort(self, error: SendError) -> None:
        """A request failed as a whole: raise it, or hand back what is left as retries."""
        if not any(o.status == "sent" for o in self._outcomes.values()):
            raise error
        retry_after_s = error.retry_after_s if isinstance(error, ProviderThrottled) else None
        for message in self.pending():
            self.retry(message, str(error), retry_after_s)

    def outcomes(self) -> list[SendOutcome]:
        missing = self.pending()
        if missing:
            ids = [m.recipient_id for m in missing]
            raise RuntimeError(f"no outcome recorded for recipients {ids}")
        return [self._outcomes[m.recipient_id] for m in self._messages]

    def _record(self, outcome: SendOutcome) -> None:
        self._outcomes[outcome.recipient_id] = outcome


# Every provider sends as the company's configured sender.
SENDER_FIELDS = (
    ConfigField("from_email", required=True),
    ConfigField("from_name"),
    ConfigField("reply_to"),
)


class EmailProvider(ABC):
    type_name: ClassVar[str]
    config_schema: ClassVar[tuple[ConfigField, ...]]
    # Most messages one provider request (for SMTP, one connection) carries; send_batch
    # splits longer batches, so a caller wanting one request per batch stays within it.
    max_batch_size: ClassVar[int]

    def __init__(self, config: Mapping[str, Any]) -> None:
        """``config`` has passed validate_config; unset fields take their defaults."""
        self.config = {
            f.name: f.default if config.get(f.name) in (None, "") else config[f.name]
            for f in self.config_schema
        }

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> list[str]:
        """Errors as "field: reason", empty when the configuration is usable."""
        known = {f.name for f in cls.config_schema}
        errors = [f"{name}: unknown setting" for name in config if name not in known]
        for spec in cls.config_schema:
            value = config.get(spec.name)
            if value is None or value == "":
                if spec.required:
                    errors.append(f"{spec.name}: required")
            elif not _is_kind(value, spec.kind):
                errors.append(f"{spec.name}: must be {_KIND_NAMES[spec.kind]}")
            elif spec.choices and value not in spec.choices:
                errors.append(f"{spec.name}: must be one of {', '.join(spec.choices)}")
        if not errors:
            errors += cls._check_config_rules(config)
        return errors

    @classmethod
    def _check_config_rules(cls, config: Mapping[str, Any]) -> list[str]:
        """Rules beyond single fields (addresses, URLs, settings that go together)."""
        errors = []
        for name in ("from_email", "reply_to"):
            problem = address_problem(str(config[name])) if config.get(name) else None
            if problem:
                errors.append(f"{name}: {problem}")
        return errors

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendOutcome]:
        """Send each message once; one outcome per message, in the order given."""
        batch = BatchOutcomes(messages)
        for message in messages:
            problem = address_problem(message.to)
            if problem:
                batch.failed(message, f"invalid address: {problem}")
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


_KIND_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def _is_kind(value: Any, kind: type) -> bool:
    # bool is an int subclass; a port of True is a mistake, not a number.
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind)
