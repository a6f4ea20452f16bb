"""Reference AWS Lambda for the cloud worker path: SQS chunk → SES → signed callback.

Deploy with this folder plus `common/templating.py`, `common/mail/signing.py`,
`common/mail/failures.py`, `services/mailer/plaintext.py`, `chevron` and `html2text`; trigger
from the company's SQS queue. Environment: MANIREPORTS_CALLBACK_SECRET (the company's callback key
from the Email offload page), AWS_REGION, optionally SES_ENDPOINT_URL. Each recipient is
rendered with the job's Mustache templates and sent with SES SendRawEmail, with the same
plain-text part as the local mailers (plaintext.text_part) and the recipient's headers as the
mailer signed them (``headers``: List-Unsubscribe, RFC 8058 one-click); outcomes go to the
chunk's `callback_url`, signed (signing.py). When SES throttles or fails, the recipients not
yet sent are reported as `retry` and ManiReports sends them from its local mailers.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import boto3
import botocore.exceptions

from common.mail import failures
from common.mail.signing import signed_headers
from common.templating import TemplateError, render
from services.mailer.plaintext import text_part

log = logging.getLogger(__name__)  # CloudWatch, in the Lambda
THROTTLING = {"Throttling", "ThrottlingException", "MaxSendingRateExceeded", "TooManyRequests"}
PostJson = Callable[[str, bytes, dict[str, str]], int]


def handler(event: dict[str, Any], context: Any = None, *, ses: Any = None,
            post: PostJson | None = None) -> dict[str, Any]:  # fmt: skip
    ses = ses or boto3.client(
        "ses",
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_url=os.environ.get("SES_ENDPOINT_URL") or None,
    )
    post = post or _post
    secret = os.environ["MANIREPORTS_CALLBACK_SECRET"]
    failures = []
    for record in event.get("Records", []):
        chunk = json.loads(record["body"])
        results = send_chunk(ses, chunk)
        body = json.dumps({"job_id": chunk["job_id"], "results": results}).encode()
        status = post(
            chunk["callback_url"], body, signed_headers(secret, chunk["company_id"], body)
        )
        if status >= 300:
            # SQS delivers the message again (partial batch response).
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def send_chunk(ses: Any, chunk: dict[str, Any]) -> list[dict[str, Any]]:
    templates, sender = chunk["templates"], chunk["sender"]
    source = f"{sender['name']} <{sender['email']}>" if sender.get("name") else sender["email"]
    results: list[dict[str, Any]] = []
    recipients = list(chunk["recipients"])
    for index, recipient in enumerate(recipients):
        variables = {**chunk.get("variables", {}), **recipient["data"], "email": recipient["email"]}
        try:
            mime = EmailMessage()
            mime["From"], mime["To"] = source, recipient["email"]
            mime["Subject"] = render(templates["subject"], variables, escape_html=False).strip()
            for name, value in (recipient.get("headers") or {}).items():
                mime[name] = value
            html = render(templates["html"], variables)
            text = (
                render(templates["text"], variables, escape_html=False)
                if templates.get("text")
                else None
            )
            mime.set_content(text_part(html, text))
            mime.add_alternative(html, subtype="html")
        except TemplateError as exc:
            results.append(_result(recipient, "failed", error=failures.template_failed(exc)))
            continue
        except ValueError:
            results.append(_result(recipient, "failed", error=failures.MESSAGE_NOT_BUILT))
            continue
        try:
            response = ses.send_raw_email(
                Source=source,
                Destinations=[recipient["email"]],
                RawMessage={"Data": mime.as_bytes()},
            )
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in THROTTLING or status >= 500:
                error = failures.RATE_LIMITED if code in THROTTLING else failures.SERVER_ERROR
                results += [_result(r, "retry", error=error) for r in recipients[index:]]
                return results
            log.warning("job %s: SES refused %s: %s", chunk["job_id"], recipient["id"], exc)
            results.append(_result(recipient, "failed", error=failures.RECIPIENT_REFUSED))
        except botocore.exceptions.BotoCoreError as exc:
            log.warning("job %s: SES unreachable: %s", chunk["job_id"], exc)
            error = failures.UNREACHABLE
            results += [_result(r, "retry", error=error) for r in recipients[index:]]
            return results
        else:
            results.append(_result(recipient, "sent", message_id=response.get("MessageId")))
    return results


def _result(recipient: dict[str, Any], status: str, *, error: str | None = None,
            message_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"recipient_id": recipient["id"], "status": status, "error": error,
            "provider_message_id": message_id}  # fmt: skip


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"callback_url must be http(s): {url!r}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
