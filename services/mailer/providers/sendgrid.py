"""SendGrid v3 Mail Send: up to 1,000 recipients a request, one personalization each.

The messages arrive rendered, so a request's content is a pair of substitution tags and each
personalization substitutes that recipient's rendered HTML and text (its subject and headers
are personalization fields of their own). A message too large for SendGrid's substitution
limit is sent alone with its content inline.

Plain ``requests`` rather than the ``sendgrid`` library: the request body is a dict either
way, and a pooled session plus direct access to the status, error body and rate-limit headers
is exactly what the error classification needs (the library's client opens a new urllib
connection per call and hides the headers behind its exception types).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

import requests

from common.mail import failures
from common.mail.provider_settings import SENDGRID_BASE_URL, SendGridSettings
from common.mail.site import MailSite

from .base import BatchOutcomes, EmailProvider, OutgoingMessage, PermanentSendError
from .http_api import HttpApi, describe
from .packing import pack_requests
from .registry import register

HTML_TAG = "-manireports-html-"
TEXT_TAG = "-manireports-text-"
# SendGrid docs (Substitution Tags): "Substitutions are limited to 50,000 bytes per
# personalization block".
MAX_SUBSTITUTION_BYTES = 50_000
# SendGrid refuses requests over 30 MB; stay well under it.
MAX_REQUEST_BYTES = 20_000_000
# An error about the recipients of personalization N, e.g. "personalizations.3.to.0.email".
_RECIPIENT_FIELD = re.compile(r"^personalizations\.(\d+)\.(to|cc|bcc)\b")


@register
class SendGridProvider(EmailProvider):
    settings = SendGridSettings
    max_batch_size = 1000

    def __init__(self, config: Mapping[str, Any], site: MailSite | None = None) -> None:
        super().__init__(config, site)
        base_url = self.site.sendgrid_base_url or SENDGRID_BASE_URL
        self._api = HttpApi("SendGrid", base_url, self.config["timeout_s"])
        self._api.session.headers["Authorization"] = f"Bearer {self.config['api_key']}"

    def _plan_requests(self, messages: list[OutgoingMessage]) -> Iterable[list[OutgoingMessage]]:
        fits = [m for m in messages if _body_bytes(m) <= MAX_SUBSTITUTION_BYTES]
        alone = [[m] for m in messages if _body_bytes(m) > MAX_SUBSTITUTION_BYTES]
        return [
            *pack_requests(
                fits,
                max_count=self.max_batch_size,
                max_bytes=MAX_REQUEST_BYTES,
                size=_body_bytes,
                shared_part=lambda m: (m.text is not None, tuple(m.attachments)),
            ),
            *alone,
        ]

    async def _send_request(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        response = await self._api.post("/v3/mail/send", json=self._request_body(request))
        if response.status_code in (200, 202):
            for message in request:
                batch.sent(message, response.headers.get("X-Message-Id"))
            return
        self._api.raise_for_unavailable(response)
        errors = _errors(response)
        named = [(i, error) for i, error in _recipient_errors(errors) if i < len(request)]
        if response.status_code != 400 or not errors or len(named) < len(errors):
            detail = f"SendGrid {response.status_code}: {describe(response)}"
            raise PermanentSendError(failures.REQUEST_REFUSED, detail)
        # SendGrid validates the whole request before sending any of it: fail the recipients
        # it named and send the rest again.
        refused = dict(named)
        for index, error in refused.items():
            batch.failed(request[index], failures.RECIPIENT_REFUSED, f"SendGrid: {error}")
        remaining = [m for index, m in enumerate(request) if index not in refused]
        if remaining:
            await self._send_request(remaining, batch)

    def _request_body(self, request: list[OutgoingMessage]) -> dict[str, Any]:
        first = request[0]
        body: dict[str, Any] = {
            "from": _address(self.config["from_email"], self.config["from_name"]),
            "personalizations": [_personalization(m, inline=len(request) == 1) for m in request],
        }
        if len(request) == 1:
            body["content"] = _content(first.html, first.text)
        else:
            body["content"] = _content(HTML_TAG, TEXT_TAG if first.text is not None else None)
        if self.config["reply_to"]:
            body["reply_to"] = {"email": self.config["reply_to"]}
        if first.attachments:
            body["attachments"] = [
                {
                    "content": base64.b64encode(a.content).decode("ascii"),
                    "filename": a.filename,
                    "type": a.content_type,
                    "disposition": "attachment",
                }
                for a in first.attachments
            ]
        return body

    async def close(self) -> None:
        self._api.close()


def _personalization(message: OutgoingMessage, *, inline: bool) -> dict[str, Any]:
    personalization: dict[str, Any] = {
        "to": [{"email": message.to}],
        "subject": message.subject,
        # Comes back in SendGrid's event webhook, to match events to recipients.
        "custom_args": {"manireports_recipient_id": str(message.recipient_id)},
    }
    if message.headers:
        personalization["headers"] = dict(message.headers)
    if not inline:
        substitutions = {HTML_TAG: message.html}
        if message.text is not None:
            substitutions[TEXT_TAG] = message.text
        personalization["substitutions"] = substitutions
    return personalization


def _content(html: str, text: str | None) -> list[dict[str, str]]:
    # SendGrid requires text/plain, when present, before text/html.
    content = [{"type": "text/plain", "value": text}] if text is not None else []
    return [*content, {"type": "text/html", "value": html}]


def _address(email: str, name: str | None) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def _body_bytes(message: OutgoingMessage) -> int:
    return len(message.html.encode()) + len((message.text or "").encode())


def _errors(response: requests.Response) -> list[dict[str, Any]]:
    try:
        errors = response.json().get("errors")
    except ValueError:
        return []
    return errors if isinstance(errors, list) else []


def _recipient_errors(errors: list[dict[str, Any]]) -> Iterable[tuple[int, str]]:
    for error in errors:
        match = _RECIPIENT_FIELD.match(str(error.get("field") or ""))
        if match:
            yield int(match.group(1)), f"{error.get('message')} ({error.get('field')})"
