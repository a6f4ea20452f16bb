"""A local stand-in for Mailgun's POST /v3/{domain}/messages, speaking its form fields and JSON.

Basic auth ``api:<key>`` (401 "Forbidden" otherwise); 200 ``{"id", "message": "Queued. Thank
you."}`` when accepted; 400 ``{"message": ...}`` when a field is missing or a recipient is not
a valid address (one message for the whole request, naming no recipient, as Mailgun does);
404 for an unknown domain; 429 when throttled. Accepted messages are kept per recipient with
``%recipient.key%`` replaced from ``recipient-variables`` as Mailgun does.
"""

from __future__ import annotations

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

MAX_RECIPIENTS = 1000
_PATH = re.compile(r"^/v3/(?P<domain>[^/]+)/messages$")
_DOMAIN_PATH = re.compile(r"^/v3/domains/(?P<domain>[^/]+)$")
_RECIPIENT_VARIABLE = re.compile(r"%recipient\.([\w-]+)%")


@dataclass(frozen=True)
class MailgunDelivery:
    to: str
    sender: str
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]
    attachments: dict[str, bytes]
    message_id: str


class MailgunServer(FakeEmailApi):
    def __init__(self, api_key: str = "key-test", domain: str = "mg.school.example") -> None:
        super().__init__()
        self.api_key = api_key
        self.domain = domain
        self.recipients_per_request: list[int] = []

    @property
    def site(self) -> MailSite:
        """The site settings that send Mailgun requests here."""
        return MailSite(mailgun_base_url=self.base_url)

    @property
    def env(self) -> dict[str, str]:
        return {"MAIL_MAILGUN_BASE_URL": self.base_url}

    def throttle(self, times: int = 1, retry_after_s: int = 1) -> None:
        """Answer the next ``times`` requests with 429."""

        def too_many_requests() -> Response:
            response = _message_response(429, "Too many requests")
            response.headers["Retry-After"] = str(retry_after_s)
            return response

        self._faults.add(times, too_many_requests)

    def fail(self, times: int = 1, status: int = 500) -> None:
        """Answer the next ``times`` requests with a server error."""
        self._faults.add(times, lambda: _message_response(status, "Internal Server Error"))

    def _respond(self, request: Request) -> Response:
        domain = _DOMAIN_PATH.match(request.path)
        if request.method == "GET" and domain is not None:
            return self._domain(request, domain["domain"])
        match = _PATH.match(request.path)
        if request.method != "POST" or match is None:
            return _message_response(404, "Not Found")
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != ("api", self.api_key):
            return Response("Forbidden", status=401, mimetype="text/plain")
        if match["domain"] != self.domain:
            return _message_response(404, f"Domain not found: {match['domain']}")
        fault = self._faults.next()
        if fault is not None:
            return fault
        problem = self._validate(request)
        if problem:
            return _message_response(400, problem)
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{secrets.token_hex(8)}@{self.domain}>"
        self._record(request, message_id)
        return Response(
            json.dumps({"id": message_id, "message": "Queued. Thank you."}),
            mimetype="application/json",
        )

    def _domain(self, request: Request, domain: str) -> Response:
        """GET /v3/domains/{domain}: the settings page's connection check."""
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != ("api", self.api_key):
            return Response("Forbidden", status=401, mimetype="text/plain")
        if domain != self.domain:
            return _message_response(404, "Domain not found")
        body = {"domain": {"name": domain, "state": "active"}, "receiving_dns_records": [],
                "sending_dns_records": []}  # fmt: skip
        return Response(json.dumps(body), mimetype="application/json")

    def _validate(self, request: Request) -> str | None:
        form = request.form
        for field in ("from", "to", "subject"):
            if not form.get(field):
                return f"{field} parameter is missing"
        if not (form.get("text") or form.get("html") or form.get("template")):
            return "Need at least one of 'text', 'html' or 'template' parameters specified"
        recipients = form.getlist("to")
        for address in recipients:
            if address_problem(address) or address.lower() in self._rejected:
                return "'to' parameter is not a valid address. please check documentation"
        if len(recipients) > MAX_RECIPIENTS:
            # Mailgun's documented batch limit; the wording of its refusal is not verified.
            return f"Too many recipients: at most {MAX_RECIPIENTS} are allowed per message"
        if "recipient-variables" in form:
            try:
                json.loads(form["recipient-variables"])
            except ValueError:
                return "recipient-variables parameter is not a valid JSON"
        return None

    def _record(self, request: Request, message_id: str) -> None:
        form = request.form
        variables = json.loads(form.get("recipient-variables", "{}"))
        headers = {key[2:]: value for key, value in form.items() if key.startswith("h:")}
        attachments = {f.filename: f.read() for f in request.files.getlist("attachment")}
        recipients = form.getlist("to")
        with self._lock:
            self.recipients_per_request.append(len(recipients))
            for address in recipients:
                values = variables.get(address, {})
                delivery = MailgunDelivery(
                    to=address,
                    sender=form["from"],
                    subject=_substitute(form["subject"], values),
                    html=_substitute(form.get("html"), values),
                    text=_substitute(form.get("text"), values),
                    headers={k: str(_substitute(v, values)) for k, v in headers.items()},
                    attachments=attachments,
                    message_id=message_id,
                )
                self._deliveries[address.lower()].append(delivery)


def _substitute(text: str | None, values: dict[str, Any]) -> str | None:
    if text is None:
        return None
    return _RECIPIENT_VARIABLE.sub(
        lambda match: str(values[match[1]]) if match[1] in values else match[0], text
    )


def _message_response(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status=status, mimetype="application/json")
