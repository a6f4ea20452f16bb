"""Mailgun: POST /v3/{domain}/messages with up to 1,000 recipients and recipient-variables.

The messages arrive rendered, so a batch request's subject, HTML and text are
``%recipient.subject%``, ``%recipient.html%`` and ``%recipient.text%`` and the
recipient-variables map each address to its rendered parts (which also makes Mailgun send
each recipient an individual message). A header's value is per recipient too
(``h:List-Unsubscribe: %recipient.h_0%``: each recipient's own signed unsubscribe link), so
messages with the same header names batch together; attachments are sent once per request,
so only messages that share them are batched together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from common.mail import failures
from common.mail.provider_settings import MAILGUN_BASE_URLS, MailgunSettings
from common.mail.site import MailSite

from .base import BatchOutcomes, EmailProvider, OutgoingMessage, PermanentSendError
from .http_api import HttpApi, describe
from .mime import sender_address
from .packing import pack_requests
from .registry import register
from .rejections import RecipientRejected, send_isolating_rejections

# Mailgun caps a message at 25 MB, recipient-variables included.
MAX_REQUEST_BYTES = 10_000_000
# Mailgun's 400 for a bad recipient, which does not say which one.
_RECIPIENT_REFUSED = re.compile(r"'to' parameter is not a valid address", re.IGNORECASE)


@register
class MailgunProvider(EmailProvider):
    settings = MailgunSettings
    max_batch_size = 1000

    def __init__(self, config: Mapping[str, Any], site: MailSite | None = None) -> None:
        super().__init__(config, site)
        base_url = self.site.mailgun_base_url or MAILGUN_BASE_URLS[self.config["region"]]
        self._api = HttpApi("Mailgun", base_url, self.config["timeout_s"])
        self._api.session.auth = ("api", self.config["api_key"])
        self._path = f"/v3/{self.config['domain']}/messages"

    def _plan_requests(self, messages: list[OutgoingMessage]) -> Iterable[list[OutgoingMessage]]:
        return pack_requests(
            messages,
            max_count=self.max_batch_size,
            max_bytes=MAX_REQUEST_BYTES,
            size=lambda m: len(json.dumps(_recipient_variables(m))),
            shared_part=lambda m: (
                m.text is not None,
                tuple(sorted(m.headers)),
                tuple(m.attachments),
            ),
        )

    async def _send_request(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        await send_isolating_rejections(request, lambda part: self._post(part, batch), batch)

    async def _post(self, request: list[OutgoingMessage], batch: BatchOutcomes) -> None:
        files = [
            ("attachment", (a.filename, a.content, a.content_type)) for a in request[0].attachments
        ]
        response = await self._api.post(
            self._path, data=self._form_fields(request), files=files or None
        )
        if response.status_code == 200:
            message_id = _message_id(response)
            for message in request:
                batch.sent(message, message_id)
            return
        self._api.raise_for_unavailable(response)
        detail = f"Mailgun {response.status_code}: {describe(response)}"
        if response.status_code == 400 and _RECIPIENT_REFUSED.search(response.text):
            raise RecipientRejected(failures.RECIPIENT_REFUSED, detail)
        raise PermanentSendError(failures.REQUEST_REFUSED, detail)

    def _form_fields(self, request: list[OutgoingMessage]) -> list[tuple[str, str]]:
        first = request[0]
        fields = [("from", sender_address(self.config["from_email"], self.config["from_name"]))]
        fields += [("to", message.to) for message in request]
        if len(request) == 1:
            fields += [("subject", first.subject), ("html", first.html)]
            if first.text is not None:
                fields.append(("text", first.text))
        else:
            fields += [("subject", "%recipient.subject%"), ("html", "%recipient.html%")]
            if first.text is not None:
                fields.append(("text", "%recipient.text%"))
            variables = {m.to: _recipient_variables(m) for m in request}
            fields.append(("recipient-variables", json.dumps(variables)))
        if self.config["reply_to"]:
            fields.append(("h:Reply-To", self.config["reply_to"]))
        if len(request) == 1:
            fields += [(f"h:{name}", value) for name, value in first.headers.items()]
        else:
            fields += [(f"h:{name}", f"%recipient.{key}%") for key, name in _header_keys(first)]
        return fields

    async def close(self) -> None:
        self._api.close()


def _header_keys(message: OutgoingMessage) -> list[tuple[str, str]]:
    """(recipient-variable name, header name) for each header, in a fixed order."""
    return [(f"h_{index}", name) for index, name in enumerate(sorted(message.headers))]


def _recipient_variables(message: OutgoingMessage) -> dict[str, str]:
    variables = {"subject": message.subject, "html": message.html}
    if message.text is not None:
        variables["text"] = message.text
    for key, name in _header_keys(message):
        variables[key] = message.headers[name]
    return variables


def _message_id(response: Any) -> str | None:
    try:
        return str(response.json().get("id") or "") or None
    except (ValueError, AttributeError):
        return None
