"""A job's templates as the mailer holds them, and one rendered message per recipient.

Each recipient's message is rendered within the per-message limits of `common.templating`
(size, time, nesting); a recipient whose message breaks one, or whose data cannot be read,
fails alone with a fixed reason and the others are sent. Every message has a plain-text part
(the job's text template, else derived from the HTML), and a message of a job type that honours
unsubscribing carries its recipient's signed RFC 8058 unsubscribe headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.errors import FieldError
from common.mail import failures
from common.mail.template_checks import TemplateFields, render_parts
from common.mail.unsubscribe import UnsubscribeLinks, unsubscribe_headers
from services.mailer.plaintext import text_part
from services.mailer.providers import OutgoingMessage, SendOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobTemplates:
    job_id: int
    company_id: int
    job_type: str
    subject: str
    html: str
    text: str | None
    variables: dict[str, Any]
    certificate_html: str | None = None

    @property
    def fields(self) -> TemplateFields:
        return TemplateFields(self.subject, self.html, self.text)


def render_messages(
    templates: JobTemplates,
    claimed: Sequence[tuple],
    *,
    links: UnsubscribeLinks | None = None,
) -> tuple[list[OutgoingMessage], list[SendOutcome]]:
    """One message per claimed recipient (id, address, data JSON[, attachments]), and the
    failed outcomes of those whose message could not be rendered. ``links``: the site's
    unsubscribe links (None: no unsubscribe headers, e.g. a site without a web tier)."""
    messages: list[OutgoingMessage] = []
    failed: list[SendOutcome] = []
    for row in claimed:
        recipient_id, email, data = row[0], row[1], row[2]
        attachments = row[3] if len(row) > 3 else ()
        try:
            recipient_data = json.loads(data or "{}")
        except ValueError:
            log.error("job %s recipient %s: data is not JSON", templates.job_id, recipient_id)
            failed.append(SendOutcome(recipient_id, "failed", error=failures.MESSAGE_NOT_BUILT))
            continue
        variables = {**templates.variables, **recipient_data, "email": email}
        try:
            parts = render_parts(templates.fields, variables)
        except FieldError as exc:
            failed.append(SendOutcome(recipient_id, "failed", error=failures.template_failed(exc)))
            continue
        messages.append(
            OutgoingMessage(
                recipient_id=recipient_id,
                to=email,
                subject=parts.subject,
                html=parts.html,
                text=text_part(parts.html, parts.text),
                headers=unsubscribe_headers(links, templates.job_type, recipient_id),
                attachments=attachments,
            )
        )
    return messages, failed
