"""A local stand-in for SendGrid's v3 Mail Send endpoint, speaking its request and error JSON.

POST /v3/mail/send with ``Authorization: Bearer <key>``; 202 with an X-Message-Id header when
accepted, 400 with ``{"errors": [{"message", "field", "help"}]}`` listing every problem when
not (SendGrid validates the whole request and sends none of it), 401 for a wrong key, 429 with
X-RateLimit-* headers when throttled. Accepted messages are kept per recipient with the
substitutions applied as SendGrid applies them, so tests see what each recipient got.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from common.mail.addresses import address_problem
from common.mail.site import MailSite
from tests.fakes.local_http import FakeEmailApi

MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 50_000
TO_HELP = (
    "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"
)


@dataclass(frozen=True)
class SendGridDelivery:
    to: str
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]
    custom_args: dict[str, str]
    attachments: dict[str, bytes]
    message_id: str


class SendGridServer(FakeEmailApi):
    def __init__(self, api_key: str = "SG.test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.accepted_requests: list[dict[str, Any]] = []

    @property
    def site(self) -> MailSite:
        """The site settings that send SendGrid requests here."""
        return MailSite(sendgrid_base_url=self.base_url)

    @property
    def env(self) -> dict[str, str]:
        return {"MAIL_SENDGRID_BASE_URL": self.base_url}

    def throttle(self, times: int = 1, reset_in_s: int = 1, after_requests: int = 0) -> None:
        """Answer ``times`` requests with 429 Too Many Requests, after ``after_requests``."""

        def too_many_requests() -> Response:
            response = _error_response(429, [_error(None, "too many requests")])
            response.headers["X-RateLimit-Limit"] = "600"
            response.headers["X-RateLimit-Remaining"] = "0"
            response.headers["X-RateLimit-Reset"] = str(int(time.time()) + reset_in_s)
            return response

        self._faults.add(times, too_many_requests, after_requests)

    def fail(self, times: int = 1, status: int = 503) -> None:
        """Answer the next ``times`` requests with a server error."""
        self._faults.add(times, lambda: _error_response(status, [_error(None, "internal error")]))

    def _respond(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/v3/scopes":
            return self._scopes(request)
        if request.method != "POST" or request.path != "/v3/mail/send":
            return _error_response(404, [_error(None, "not found")])
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            message = "The provided authorization grant is invalid, expired, or revoked"
            return _error_response(401, [_error(None, message)])
        fault = self._faults.next()
        if fault is not None:
            return fault
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return _error_response(400, [_error(None, "Bad Request")])
        errors = self._validate(body)
        if errors:
            return _error_response(400, errors)
        message_id = secrets.token_urlsafe(16)
        self._record(body, message_id)
        return Response(status=202, headers={"X-Message-Id": message_id})

    def _scopes(self, request: Request) -> Response:
        """GET /v3/scopes: the settings page's connection check (the key's permissions)."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            message = "The provided authorization grant is invalid, expired, or revoked"
            return _error_response(401, [_error(None, message)])
        fault = self._faults.next()
        if fault is not None:
            return fault
        scopes = ["mail.send", "user.profile.read"]
        return Response(json.dumps({"scopes": scopes}), mimetype="application/json")

    def _validate(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        errors = []
        if address_problem(str((body.get("from") or {}).get("email", ""))):
            errors.append(_error("from.email", "The from email does not contain a valid address."))
        personalizations = body.get("personalizations") or []
        if not personalizations:
            message = (
                "The personalizations field is required and must have at least one personalization."
            )
            errors.append(_error("personalizations", message))
        if len(personalizations) > MAX_PERSONALIZATIONS:
            message = (
                "The personalization block is limited to 1000 personalizations per API "
                f"request. You have provided {len(personalizations)} personalizations. Please "
                "consider splitting this into multiple requests and resending your request."
            )
            errors.append(_error("personalizations", message))
        seen: set[str] = set()
        for i, personalization in enumerate(personalizations):
            errors += self._validate_recipients(i, personalization, seen)
            substitutions = json.dumps(personalization.get("substitutions", {}))
            if len(substitutions.encode()) > MAX_SUBSTITUTION_BYTES:
                message = "Substitutions are limited to 50,000 bytes per personalization block."
                errors.append(_error(f"personalizations.{i}.substitutions", message))
        if not body.get("subject") and not all(p.get("subject") for p in personalizations):
            message = (
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined."
            )
            errors.append(_error("subject", message))
        errors += _validate_content(body.get("content") or [])
        return errors

    def _validate_recipients(
        self, index: int, personalization: dict[str, Any], seen: set[str]
    ) -> list[dict[str, Any]]:
        recipients = personalization.get("to") or []
        if not recipients:
            message = (
                "The to array is required for all personalization objects, and must have at "
                "least one email object with a valid email address."
            )
            return [_error(f"personalizations.{index}.to", message, TO_HELP)]
        errors = []
        for j, recipient in enumerate(recipients):
            address = str(recipient.get("email", ""))
            field = f"personalizations.{index}.to.{j}.email"
            if address_problem(address) or address.lower() in self._rejected:
                errors.append(_error(field, "Does not contain a valid address.", TO_HELP))
            elif address.lower() in seen:
                message = (
                    "Each email address in the personalization block should be unique between "
                    f"to, cc, and bcc. We found the first duplicate instance of [{address}] in "
                    f"the personalizations.{index}.to field."
                )
                errors.append(_error(field, message, TO_HELP))
            seen.add(address.lower())
        return errors

    def _record(self, body: dict[str, Any], message_id: str) -> None:
        content = {part["type"]: part["value"] for part in body["content"]}
        attachments = {
            a["filename"]: base64.b64decode(a["content"]) for a in body.get("attachments", [])
        }
        with self._lock:
            self.accepted_requests.append(body)
            for personalization in body["personalizations"]:
                substitutions = personalization.get("substitutions", {})
                for recipient in personalization["to"]:
                    delivery = SendGridDelivery(
                        to=recipient["email"],
                        subject=_substitute(
                            personalization.get("subject") or body["subject"], substitutions
                        ),
                        html=_substitute(content.get("text/html"), substitutions),
                        text=_substitute(content.get("text/plain"), substitutions),
                        headers={**body.get("headers", {}), **personalization.get("headers", {})},
                        custom_args=personalization.get("custom_args", {}),
                        attachments=attachments,
                        message_id=message_id,
                    )
                    self._deliveries[recipient["email"].lower()].append(delivery)


def _validate_content(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not content:
        message = (
            "Unless a valid template_id is provided, the content parameter is required. There "
            "must be at least one defined content block. We typically suggest both text/plain "
            "and text/html blocks are included, but only one block is required."
        )
        return [_error("content", message)]
    errors = [
        _error(
            f"content.{k}.value",
            "The content value must be a string at least one character in length.",
        )
        for k, part in enumerate(content)
        if not part.get("value")
    ]
    types = [part.get("type") for part in content]
    if "text/plain" in types and "text/html" in types and types.index("text/plain") > 0:
        message = (
            "If present, text/plain and text/html may only be provided in the following "
            "order: text/plain, text/html."
        )
        errors.append(_error("content.0.type", message))
    return errors


def _substitute(text: str | None, substitutions: dict[str, str]) -> str | None:
    # One pass over the text, as SendGrid does: substituted values are not scanned again.
    if text is None or not substitutions:
        return text
    pattern = "|".join(re.escape(key) for key in sorted(substitutions, key=len, reverse=True))
    return re.sub(pattern, lambda match: substitutions[match.group()], text)


def _error(field: str | None, message: str, help_url: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": help_url}


def _error_response(status: int, errors: list[dict[str, Any]]) -> Response:
    return Response(json.dumps({"errors": errors}), status=status, mimetype="application/json")
