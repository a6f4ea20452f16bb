"""Handing a job's chunks to the company's SQS queue, for the cloud worker (handler.py).

Each SQS message is one chunk as self-contained JSON (templates, sender, recipients and
their data) under SQS's 256 KB limit; a chunk too large for one message is split. If the
queue cannot be reached part-way, the chunks already handed over stay with the cloud worker
and the caller sends the rest locally (CloudDispatchFailed.sent).

As on the local path, recipients who unsubscribed from the company's bulk mail are recorded as
skipped and never handed over, and each recipient carries the RFC 8058 headers of its message
(``headers``), signed here: the Lambda has no key to sign them with.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from sqlalchemy import select, update

from common.appdb import AppDB
from common.mail.config import CompanyMailConfig
from common.mail.job_status import finish_if_done
from common.mail.unsubscribe import (
    HONOURS_UNSUBSCRIBE,
    RECIPIENT_SKIPPED,
    SKIPPED_REASON,
    UnsubscribeLinks,
    normalise,
    unsubscribe_headers,
    unsubscribed_among,
)
from common.models.mail import RECIPIENT_PENDING, CloudJob, CloudRecipient

MAX_MESSAGE_BYTES = 240_000


class CloudDispatchFailed(RuntimeError):
    def __init__(self, cause: Exception, sent: set[int]) -> None:
        super().__init__(f"SQS: {cause}")
        self.sent = sent


def sqs_client(config: CompanyMailConfig, endpoint_url: str | None = None) -> Any:
    """SQS of the company's region; ``endpoint_url`` is the site's override (test doubles)."""
    aws = config.aws
    return boto3.client(
        "sqs",
        region_name=aws.get("aws_region") or "us-east-1",
        aws_access_key_id=aws.get("aws_access_key_id") or None,
        aws_secret_access_key=aws.get("aws_secret_access_key") or None,
        endpoint_url=endpoint_url,
        config=botocore.config.Config(
            retries={"total_max_attempts": 2, "mode": "standard"}, connect_timeout=5
        ),
    )


def chunk_messages(
    job: CloudJob, config: CompanyMailConfig, chunk: int, recipients: list[dict[str, Any]]
) -> list[str]:
    """The SQS bodies for one chunk (more than one when it does not fit in one message)."""
    head = {
        "job_id": job.id,
        "company_id": job.companyid,
        "chunk": chunk,
        "callback_url": config.aws.get("callback_url"),
        "sender": {"email": config.sender_email, "name": config.sender_name},
        "templates": {
            "subject": job.subject_template,
            "html": job.html_template,
            "text": job.text_template,
        },
        "variables": json.loads(job.payload or "{}").get("variables", {}),
    }
    bodies: list[str] = []
    part: list[dict[str, Any]] = []
    size = len(json.dumps(head))
    for recipient in recipients:
        item = len(json.dumps(recipient)) + 2
        if part and size + item > MAX_MESSAGE_BYTES:
            bodies.append(json.dumps({**head, "recipients": part}))
            part, size = [], len(json.dumps(head))
        part.append(recipient)
        size += item
    if part:
        bodies.append(json.dumps({**head, "recipients": part}))
    return bodies


class SqsRoute:
    """The `cloud` argument of dispatch_job: sends the plan's chunks to SQS."""

    def __init__(
        self,
        appdb: AppDB,
        endpoint_url: str | None = None,
        links: UnsubscribeLinks | None = None,
    ) -> None:
        self.appdb = appdb
        self.endpoint_url = endpoint_url
        self.links = links  # the site's unsubscribe links (None: no List-Unsubscribe)

    async def __call__(
        self, job: CloudJob, config: CompanyMailConfig, plan: dict[int, list[int]]
    ) -> set[int]:
        return await asyncio.to_thread(self._send, job, config, plan)

    def _send(
        self, job: CloudJob, config: CompanyMailConfig, plan: dict[int, list[int]]
    ) -> set[int]:
        if not config.sqs_queue_url:
            raise CloudDispatchFailed(ValueError("no SQS queue URL configured"), set())
        client = sqs_client(config, self.endpoint_url)
        sent: set[int] = set()
        try:
            for chunk, ids in sorted(plan.items()):
                recipients = self._recipients(job, ids)
                for body in chunk_messages(job, config, chunk, recipients) if recipients else ():
                    client.send_message(QueueUrl=config.sqs_queue_url, MessageBody=body)
                sent.add(chunk)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise CloudDispatchFailed(exc, sent) from exc
        finally:
            client.close()
        return sent

    def _recipients(self, job: CloudJob, ids: list[int]) -> list[dict[str, Any]]:
        """The chunk's recipients for the Lambda; unsubscribed ones are recorded as skipped."""
        with self.appdb.transaction() as session:
            rows = session.execute(
                select(CloudRecipient.id, CloudRecipient.email, CloudRecipient.recipient_data)
                .where(CloudRecipient.id.in_(ids), CloudRecipient.status == RECIPIENT_PENDING)
                .order_by(CloudRecipient.id)
            ).all()
            gone: set[str] = set()
            if job.type in HONOURS_UNSUBSCRIBE:
                gone = unsubscribed_among(session, job.companyid, (r.email for r in rows))
            skipped = [r.id for r in rows if normalise(r.email) in gone]
            if skipped:
                session.execute(
                    update(CloudRecipient)
                    .where(
                        CloudRecipient.id.in_(skipped),
                        CloudRecipient.status == RECIPIENT_PENDING,
                    )
                    .values(status=RECIPIENT_SKIPPED, last_error=SKIPPED_REASON)
                    .execution_options(synchronize_session=False)
                )
                finish_if_done(session, job.id)  # every recipient may have opted out
            return [
                {
                    "id": r.id,
                    "email": r.email,
                    "data": json.loads(r.recipient_data or "{}"),
                    "headers": unsubscribe_headers(self.links, job.type, r.id),
                }
                for r in rows
                if normalise(r.email) not in gone
            ]
