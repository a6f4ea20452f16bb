"""Amazon SES: SendBulkTemplatedEmail (v1, up to 50 destinations a call) or SendEmail (v2).

The mailer renders every message itself (Mustache, per the spec), so the SES template is a
pass-through: its parts are ``{{{subject}}}``, ``{{{html}}}`` and ``{{{text}}}`` (triple braces,
so SES does not escape the rendered HTML again) and each destination's ReplacementTemplateData
carries that recipient's rendered parts. The template never changes, so it is created (or
brought up to date) once per provider rather than per job. Messages with custom headers or
attachments, which SendBulkTemplatedEmail cannot carry, and every message in v2 mode are sent
one by one as raw MIME.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from common.mail import failures
from common.mail.provider_settings import SesSettings
from common.mail.site import MailSite

from .base import (
    BatchOutcomes,
    EmailProvider,
    OutgoingMessage,
    PermanentSendError,
    ProviderThrottled,
    SendError,
    TransientSendError,
)
from .mime import build_mime, sender_address
from .packing import pack_requests
from .registry import register
from .rejections import RecipientRejected, send_isolating_rejections

MAX_TEMPLATE_DATA_CHARS = 262_144  # SES TemplateData limit, per destination
# SES refuses requests over 10 MB, and the query protocol's percent-encoding can triple the
# size of HTML.
MAX_BULK_REQUEST_CHARS = 3_000_000
THROTTLING_CODES = {"Throttling", "ThrottlingException", "MaxSendingRateExceeded"}
THROTTLING_CODES_V2 = {"TooManyRequestsException"}
# Refusals that concern a recipient (or the content sent to one), not the account.
RECIPIENT_CODES = {"MessageRejected", "InvalidParameterValue", "BadRequestException"}
CREDENTIALS_CODES = {
    "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
    "AccessDenied", "AccessDeniedException", "ExpiredToken", "InvalidAccessKeyId",
    "MissingAuthenticationToken", "IncompleteSignature",
}  # fmt: skip
# Per-destination statuses of a bulk send that fail that destination for good; the others
# (throttling, paused or misconfigured account) are not the recipient's fault: retried.
FAILED_DESTINATION_STATUSES = {"MessageRejected", "InvalidParameterValue", "Failed"}
THROTTLED_DESTINATION_STATUSES = {"AccountThrottled", "AccountDailyQuotaExceeded"}


@register
class SesProvider(EmailProvider):
    settings = SesSettings
    max_batch_size = 50

    def __init__(self, config: Mapping[str, Any], site: MailSite | None = None) -> None:
        super().__init__(config, site)
        session = boto3.session.Session(
            aws_access_key_id=self.config["access_key_id"] or None,
            aws_secret_access_key=self.config["secret_access_key"] or None,
            region_name=self.config["region"],
        )
        # One attempt per call: the mailer NAKs with its own backoff instead of botocore
        # sleeping in a worker thread.
        client_config = botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        self._bulk = self.config["api"] == "v1_bulk"
        self._client = session.client(
            "ses" if self._bulk else "sesv2",
            # None: boto3 derives the endpoint from the region. Only the site overrides it.
            endpoint_url=self.site.ses_endpoint_url,
            config=client_config,
        )
        self._source = sender_address(self.config["from_email"], self.config["from_name"])
        self._ready_templates: set[str] = set()

    def _plan_requests(self, messages: list[OutgoingMessage]) -> Iterable[list[OutgoingMessage]]:
        if not self._bulk:
            return [[message] for message in messages]
        bulk = [m for m in messages if _fits_bulk(m)]
        alone = [[m] for m in messages if not _fits_bulk(m)]
        return [
            *pack_requests(
                bulk,
                max_count=self.max_batch_size,
                max_bytes=MAX_BULK_REQUEST_CHARS,
                size=lambda m: len(_replacement_data(m)),
                shared_part=lambda m: m.text is not None,
            ),
            *alone,
        ]

    async def _send_request(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        if not self._bulk:
            send = self._send_v2
        elif _fits_bulk(request[0]):
            send = self._send_bulk
        else:
            send = self._send_raw_v1
        await send_isolating_rejections(request, lambda part: send(part, batch), batch)

    async def _send_bulk(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        template = await self._ensure_template(with_text=request[0].text is not None)
        params: dict[str, Any] = {
            "Source": self._source,
            "Template": template,
            "DefaultTemplateData": json.dumps({"subject": "", "html": "", "text": ""}),
            "Destinations": [
                {
                    "Destination": {"ToAddresses": [message.to]},
                    "ReplacementTemplateData": _replacement_data(message),
                    "ReplacementTags": [
                        {"Name": "recipient_id", "Value": str(message.recipient_id)}
                    ],
                }
                for message in request
            ],
            **self._sending_options(),
        }
        if self.config["reply_to"]:
            params["ReplyToAddresses"] = [self.config["reply_to"]]
        response = await self._call(self._client.send_bulk_templated_email, **params)
        for message, status in zip(request, response["Status"], strict=True):
            _record_destination(message, status, batch)

    async def _send_raw_v1(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        message = request[0]
        raw = self._raw_mime(message, batch)
        if raw is None:
            return
        response = await self._call(
            self._client.send_raw_email,
            Source=self._source,
            Destinations=[message.to],
            RawMessage={"Data": raw},
            **self._sending_options(),
        )
        batch.sent(message, response["MessageId"])

    async def _send_v2(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        message = request[0]
        raw = self._raw_mime(message, batch)
        if raw is None:
            return
        response = await self._call(
            self._client.send_email,
            FromEmailAddress=self._source,
            Destination={"ToAddresses": [message.to]},
            Content={"Raw": {"Data": raw}},
            EmailTags=[{"Name": "recipient_id", "Value": str(message.recipient_id)}],
            **self._sending_options(),
        )
        batch.sent(message, response["MessageId"])

    def _raw_mime(self, message: OutgoingMessage, batch: BatchOutcomes) -> bytes | None:
        try:
            mime = build_mime(
                message,
                from_email=self.config["from_email"],
                from_name=self.config["from_name"],
                reply_to=self.config["reply_to"],
            )
        except ValueError as exc:
            batch.failed(message, failures.MESSAGE_NOT_BUILT, str(exc))
            return None
        return mime.as_bytes()

    def _sending_options(self) -> dict[str, Any]:
        if self.config["configuration_set"]:
            return {"ConfigurationSetName": self.config["configuration_set"]}
        return {}

    async def _ensure_template(self, *, with_text: bool) -> str:
        name = f"{self.config['template_name']}-{'html-text' if with_text else 'html'}"
        if name in self._ready_templates:
            return name
        template = {"TemplateName": name, "SubjectPart": "{{{subject}}}", "HtmlPart": "{{{html}}}"}
        if with_text:
            template["TextPart"] = "{{{text}}}"

        def create_or_update() -> None:
            try:
                self._client.create_template(Template=template)
            except botocore.exceptions.ClientError as exc:
                if _error_code(exc) != "AlreadyExists":
                    raise
                self._client.update_template(Template=template)

        await self._call(create_or_update)
        self._ready_templates.add(name)
        return name

    async def _call(self, operation: Callable[..., Any], **params: Any) -> Any:
        try:
            return await asyncio.to_thread(operation, **params)
        except botocore.exceptions.ClientError as exc:
            raise self._classify(exc) from exc
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as exc:
            raise TransientSendError(failures.UNREACHABLE, f"SES: {exc}") from exc

    def _classify(self, exc: botocore.exceptions.ClientError) -> SendError:
        code = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        detail = f"SES {code} ({status}): {message}"
        if code in THROTTLING_CODES or code in THROTTLING_CODES_V2:
            return ProviderThrottled(failures.RATE_LIMITED, detail=detail)
        if status >= 500:
            return TransientSendError(failures.SERVER_ERROR, detail)
        if code == "TemplateDoesNotExist":
            # Deleted behind our back: create it again on the next attempt.
            self._ready_templates.clear()
            return TransientSendError(failures.TEMPORARY, detail)
        if code in CREDENTIALS_CODES or status in (401, 403):
            return PermanentSendError(failures.CREDENTIALS_REFUSED, detail)
        if code in RECIPIENT_CODES:
            if self.config["from_email"].lower() in message.lower():
                return PermanentSendError(failures.SENDER_REFUSED, detail)
            return RecipientRejected(failures.RECIPIENT_REFUSED, detail)
        return PermanentSendError(failures.REQUEST_REFUSED, detail)

    async def close(self) -> None:
        self._client.close()


def _fits_bulk(message: OutgoingMessage) -> bool:
    return (
        not message.headers
        and not message.attachments
        and len(_replacement_data(message)) <= MAX_TEMPLATE_DATA_CHARS
    )


def _replacement_data(message: OutgoingMessage) -> str:
    parts = {"subject": message.subject, "html": message.html, "text": message.text or ""}
    return json.dumps(parts, ensure_ascii=False)


def _record_destination(
    message: OutgoingMessage, status: Mapping[str, str], batch: BatchOutcomes
) -> None:
    code = status.get("Status")
    message_id = status.get("MessageId")
    # moto leaves Status out of successful entries; a MessageId means SES took the message.
    detail = f"SES {code}: {status.get('Error', '')}"
    if code == "Success" or (code is None and message_id):
        batch.sent(message, message_id)
    elif code in FAILED_DESTINATION_STATUSES:
        batch.failed(message, failures.RECIPIENT_REFUSED, detail)
    elif code in THROTTLED_DESTINATION_STATUSES:
        batch.retry(message, failures.RATE_LIMITED, detail=detail)
    else:
        batch.retry(message, failures.TEMPORARY, detail=detail)


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
