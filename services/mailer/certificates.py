"""Certificate PDFs for `certificate` jobs: one per recipient, rendered with xhtml2pdf.

With an S3 bucket configured the PDF is uploaded (one key per job and recipient, so a retry
overwrites rather than piles up) and the email carries a presigned download link as
`{{certificate_url}}`; without one the PDF is attached to the email.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence
from typing import Any

import boto3
from xhtml2pdf import pisa

from common.templating import render
from services.mailer.providers import Attachment

LINK_EXPIRES_S = 7 * 86400
DEFAULT_CERTIFICATE_HTML = """<html><head><style>
@page { size: a4 landscape; margin: 2cm; }
body { font-family: Helvetica; text-align: center; }
h1 { font-size: 32pt; margin-top: 3cm; }
p { font-size: 16pt; }
</style></head><body>
<h1>Certificate of completion</h1>
<p>This certifies that</p>
<p><b>{{firstname}} {{lastname}}</b></p>
<p>has completed</p>
<p><b>{{course}}</b></p>
{{#date}}<p>on {{date}}</p>{{/date}}
</body></html>"""


class CertificateError(RuntimeError):
    pass


def certificate_pdf(template: str, variables: dict[str, Any]) -> bytes:
    html = render(template, variables)
    out = io.BytesIO()
    status = pisa.CreatePDF(html, dest=out)
    if status.err:
        raise CertificateError(f"certificate PDF could not be built ({status.err} error(s))")
    return out.getvalue()


def s3_client(aws: dict[str, Any], endpoint_url: str | None = None) -> Any:
    """S3 of the company's region; ``endpoint_url`` is the site's override (test doubles)."""
    return boto3.client(
        "s3",
        region_name=aws.get("aws_region") or "us-east-1",
        aws_access_key_id=aws.get("aws_access_key_id") or None,
        aws_secret_access_key=aws.get("aws_secret_access_key") or None,
        endpoint_url=endpoint_url,
    )


def certificate_key(company_id: int, job_id: int, recipient_id: int) -> str:
    return f"certificates/{company_id}/{job_id}/{recipient_id}.pdf"


class CertificateAttacher:
    """The delivery hook: adds each recipient's certificate (link or attachment)."""

    def __init__(self, aws_endpoint_url: str | None = None) -> None:
        self.aws_endpoint_url = aws_endpoint_url

    async def __call__(self, templates: Any, config: Any, claimed: Sequence[tuple]) -> list[tuple]:
        if templates.job_type != "certificate":
            return list(claimed)
        return await asyncio.to_thread(self._attach, templates, config, claimed)

    def _attach(self, templates: Any, config: Any, claimed: Sequence[tuple]) -> list[tuple]:
        template = templates.certificate_html or DEFAULT_CERTIFICATE_HTML
        client = s3_client(config.aws, self.aws_endpoint_url) if config.s3_bucket else None
        result: list[tuple[Any, str, str, tuple[Attachment, ...]]] = []
        for recipient_id, email, data_json, *_ in claimed:
            data = json.loads(data_json or "{}")
            variables = {**templates.variables, **data, "email": email}
            pdf = certificate_pdf(template, variables)
            if client is not None:
                key = certificate_key(templates.company_id, templates.job_id, recipient_id)
                client.put_object(
                    Bucket=config.s3_bucket, Key=key, Body=pdf, ContentType="application/pdf"
                )
                data["certificate_url"] = client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": config.s3_bucket, "Key": key},
                    ExpiresIn=LINK_EXPIRES_S,
                )
                result.append((recipient_id, email, json.dumps(data), ()))
            else:
                attachment = Attachment("certificate.pdf", pdf, "application/pdf")
                result.append((recipient_id, email, data_json, (attachment,)))
        return result
