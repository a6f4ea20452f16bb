"""moto's SES in its HTTP mode (ThreadedMotoServer) on a free port, with a verified sender.

moto neither throttles nor refuses recipients, so its WSGI app sits behind a fault injector
that can answer a send call the way SES does: v1 (query protocol) with an XML
``<ErrorResponse>``, v2 (REST-JSON) with ``x-amzn-ErrorType`` and a JSON body. ``delivered``
reads what moto accepted and expands the pass-through templates as SES would, so tests see
what each recipient got.
"""

from __future__ import annotations

import email
import email.policy
import html
import io
import json
import re
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qs

import boto3
import requests
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.ses.models import RawMessage, TemplateMessage, ses_backends
from werkzeug.serving import make_server

from common.mail.site import MailSite
from tests.fakes.smtp_sink import free_port

REGION = "us-east-1"
SENDER = "noreply@school.example"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_V1_SEND_ACTIONS = {"SendBulkTemplatedEmail", "SendRawEmail", "SendEmail"}
_V1_DESTINATION = re.compile(
    r"^Destinations\.member\.\d+(\.Destination\.ToAddresses\.member\.\d+)?$"
)
_TEMPLATE_VARIABLE = re.compile(r"\{\{\{\s*(\w+)\s*\}\}\}|\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class SesDelivery:
    to: str
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]
    attachments: dict[str, bytes]


@dataclass(frozen=True)
class _Fault:
    status: int  # 200: the call succeeds, but every destination gets `code` as its status
    code: str
    message: str
    recipient: str | None  # only calls naming this recipient; None: any send call


class _FaultInjector:
    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._faults: list[tuple[_Fault, int | None]] = []  # (fault, times left or forever)

    def add(self, fault: _Fault, times: int | None) -> None:
        with self._lock:
            self._faults.append((fault, times))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __call__(self, environ: dict, start_response: Any) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        v2 = environ["PATH_INFO"] == "/v2/email/outbound-emails"
        recipients = _v2_recipients(body) if v2 else _v1_send_recipients(body)
        fault = self._take(recipients)
        if fault is None:
            return self._app(environ, start_response)
        status_line = f"{fault.status} {'Error' if fault.status >= 500 else 'Bad Request'}"
        if fault.status == 200:
            status_line = "200 OK"
            payload = _v1_bulk_status_xml(fault, _v1_destination_count(body)).encode()
            headers = [("Content-Type", "text/xml")]
        elif v2:
            payload = json.dumps({"message": fault.message}).encode()
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", fault.code)]
        else:
            payload = _v1_error_xml(fault).encode()
            headers = [("Content-Type", "text/xml")]
        start_response(status_line, [*headers, ("Content-Length", str(len(payload)))])
        return [payload]

    def _take(self, recipients: set[str] | None) -> _Fault | None:
        if recipients is None:  # not a send call
            return None
        with self._lock:
            for index, (fault, times) in enumerate(self._faults):
                if fault.recipient is not None and fault.recipient not in recipients:
                    continue
                if times is not None:
                    if times <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = (fault, times - 1)
                return fault
        return None


class _QuietRequestHandler(MotoRequestHandler):
    def log_request(self, *args: Any) -> None:
        """Test runs do not need a line per request."""


class _FaultInjectingMotoServer(ThreadedMotoServer):
    # ThreadedMotoServer has no hook for wrapping its WSGI app; this mirrors its own
    # _server_entry with the fault injector in front of moto's dispatcher.
    def __init__(self, port: int) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.faults = _FaultInjector(DomainDispatcherApplication(create_backend_app))

    def _server_entry(self) -> None:
        self._server = make_server(
            self._ip_address,
            self._port,
            self.faults,
            True,
            request_handler=_QuietRequestHandler,
        )
        self._server_ready_event.set()
        self._server.serve_forever()


class MotoSes:
    def __init__(self) -> None:
        self.port = free_port()
        self._server = _FaultInjectingMotoServer(self.port)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def site(self) -> MailSite:
        """The site settings that send SES, SQS and S3 requests here."""
        return MailSite(ses_endpoint_url=self.endpoint_url, aws_endpoint_url=self.endpoint_url)

    @property
    def env(self) -> dict[str, str]:
        """The same for a mailer process."""
        return {"MAIL_SES_ENDPOINT_URL": self.endpoint_url,
                "MAIL_AWS_ENDPOINT_URL": self.endpoint_url}  # fmt: skip

    def provider_config(self, **overrides: Any) -> dict[str, Any]:
        """A company's SES provider settings (the endpoint is the site's: `site`, `env`)."""
        return {
            "region": REGION,
            "access_key_id": CREDENTIALS["aws_access_key_id"],
            "secret_access_key": CREDENTIALS["aws_secret_access_key"],
            "from_email": SENDER,
            **overrides,
        }

    def start(self) -> None:
        self._server.start()
        self.reset()

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget everything sent and every fault; the sender is verified again."""
        self._server.faults.clear()
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        client = boto3.client(
            "ses", region_name=REGION, endpoint_url=self.endpoint_url, **CREDENTIALS
        )
        client.verify_email_identity(EmailAddress=SENDER)

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int = 400,
        code: str = "Throttling",
        message: str = "Maximum sending rate exceeded.",
    ) -> None:
        """Answer the next ``times`` send calls with this SES error."""
        self._server.faults.add(_Fault(status, code, message, recipient=None), times)

    def answer_each_destination(self, code: str, message: str, times: int = 1) -> None:
        """Accept the next ``times`` bulk calls but give each destination this status (SES's
        per-destination answer: AccountThrottled, TransientFailure, ...); nothing is sent."""
        self._server.faults.add(_Fault(200, code, message, recipient=None), times)

    def reject_recipient(self, address: str) -> None:
        """Refuse every send call naming ``address``, as the SES sandbox does."""
        message = (
            "Email address is not verified. The following identities failed the check in "
            f"region {REGION.upper()}: {address}"
        )
        self._server.faults.add(_Fault(400, "MessageRejected", message, address.lower()), None)

    def bulk_call_sizes(self) -> list[int]:
        """Destinations in each SendBulkTemplatedEmail call moto accepted."""
        return [
            len(m.destinations) for m in self._sent_messages() if isinstance(m, TemplateMessage)
        ]

    def delivered(self) -> dict[str, list[SesDelivery]]:
        deliveries: dict[str, list[SesDelivery]] = defaultdict(list)
        backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
        for message in self._sent_messages():
            if isinstance(message, TemplateMessage):
                template = backend.templates[message.template]
                for destination in message.destinations:
                    data = json.loads(destination["ReplacementTemplateData"])
                    for address in destination["Destination"]["ToAddresses"]:
                        deliveries[address.lower()].append(_expand(template, address, data))
            elif isinstance(message, RawMessage):
                # moto adds the To header's addresses to the envelope's; SES sends once each.
                addresses = dict.fromkeys(parseaddr(a)[1].lower() for a in message.destinations)
                for address in addresses:
                    deliveries[address].append(_parse_raw(address, message.raw_data))
        return deliveries

    def _sent_messages(self) -> list[Any]:
        return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def _expand(template: dict[str, str], address: str, data: dict[str, Any]) -> SesDelivery:
    # SES renders templates with Handlebars: {{{x}}} as is, {{x}} HTML-escaped.
    def render(part: str | None) -> str | None:
        if not part:  # moto stores a part the template did not have as ""
            return None
        return _TEMPLATE_VARIABLE.sub(
            lambda m: str(data[m[1]]) if m[1] else html.escape(str(data[m[2]])), part
        )

    return SesDelivery(
        to=address,
        subject=render(template["subject_part"]) or "",
        html=render(template.get("html_part")),
        text=render(template.get("text_part")),
        headers={},
        attachments={},
    )


def _parse_raw(address: str, raw: str) -> SesDelivery:
    message = email.message_from_string(raw, policy=email.policy.default)
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    return SesDelivery(
        to=address,
        subject=str(message["Subject"]),
        html=html_part.get_content() if html_part else None,
        text=text_part.get_content() if text_part else None,
        headers={name: str(value) for name, value in message.items()},
        attachments={
            part.get_filename(): part.get_content() for part in message.iter_attachments()
        },
    )


def _v1_send_recipients(body: bytes) -> set[str] | None:
    params = parse_qs(body.decode("utf-8", "replace"))
    if params.get("Action", [""])[0] not in _V1_SEND_ACTIONS:
        return None
    return {
        value.lower()
        for key, values in params.items()
        if _V1_DESTINATION.match(key)
        for value in values
    }


def _v2_recipients(body: bytes) -> set[str]:
    destination = json.loads(body or b"{}").get("Destination", {})
    return {address.lower() for address in destination.get("ToAddresses", [])}


def _v1_destination_count(body: bytes) -> int:
    params = parse_qs(body.decode("utf-8", "replace"))
    return len({key.split(".")[2] for key in params if key.startswith("Destinations.member.")})


def _v1_bulk_status_xml(fault: _Fault, destinations: int) -> str:
    member = (f"<member><Status>{fault.code}</Status>"
              f"<Error>{html.escape(fault.message)}</Error></member>")  # fmt: skip
    return (
        '<SendBulkTemplatedEmailResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">'
        f"<SendBulkTemplatedEmailResult><Status>{member * destinations}</Status>"
        "</SendBulkTemplatedEmailResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</SendBulkTemplatedEmailResponse>"
    )


def _v1_error_xml(fault: _Fault) -> str:
    kind = "Receiver" if fault.status >= 500 else "Sender"
    return (
        '<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">'
        f"<Error><Type>{kind}</Type><Code>{fault.code}</Code>"
        f"<Message>{html.escape(fault.message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
