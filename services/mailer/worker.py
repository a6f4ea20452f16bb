"""The mailer service: email chunks from the MAIL work queue, and `mr.cmd.mailer.*` commands.

Any number of replicas share the durable pull consumer `mailer`; each runs
`MAILER_CONCURRENCY` chunk loops. Commands: `dispatch_job` (publish a job's chunks or hand
it to the cloud worker), `watch_email_queue` (claim IOMAD's queued emails, fired by the
scheduler), `retry_dead_letters` (reopen dead-lettered chunks and send them again).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy import Engine, select

from common.bus import ConsumerSpec
from common.commands import CommandHandler, CommandWorker
from common.db import make_engine
from common.mail.job_status import retry_dead_chunks
from common.mail.jobs import undispatched_jobs
from common.mail.queue import dispatch_async
from common.mail.site import MailSite
from common.mail.unsubscribe import links_for
from common.models.mail import CloudDeadChunk, CloudJob
from common.moodle.tables import MoodleTables
from common.service import Consumption, RejectMessage
from services.mailer.certificates import CertificateAttacher
from services.mailer.cloud.sqs import SqsRoute
from services.mailer.delivery import ChunkSender
from services.mailer.dispatch import (
    STALLED_AFTER_S,
    dead_letter,
    dispatch_job,
    resume_stalled_jobs,
)
from services.mailer.interception import claim_email_queue_rows
from services.mailer.ratelimit import RateLimiter
from services.mailer.report_files import AttachmentsByJobType, ReportFileAttacher

MAIL_MAX_DELIVER = 8
UNDISPATCHED_AFTER_S = 300.0


def mail_consumer(ack_wait_s: float, max_deliver: int = MAIL_MAX_DELIVER) -> ConsumerSpec:
    return ConsumerSpec(
        stream="MAIL",
        durable="mailer",
        filter_subject="mr.mail.chunk",
        ack_wait_s=ack_wait_s,
        max_deliver=max_deliver,
    )


class MailerWorker(CommandWorker):
    name = "mailer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.concurrency = self.settings.mailer_concurrency
        self.mail_max_deliver = self.settings.mailer_max_deliver

    async def on_start(self) -> None:
        await super().on_start()
        self.site = MailSite.from_settings(self.settings)
        self.limiter = await RateLimiter.open(self.bus)
        self.sender = ChunkSender(
            self.appdb,
            self.limiter,
            secret_key=self.settings.secret_key,
            lease_s=float(self.settings.bus_ack_wait_s),
            instance=self.instance,
            attachments=AttachmentsByJobType(
                certificate=CertificateAttacher(self.site.aws_endpoint_url),
                scheduled_report=ReportFileAttacher(self.appdb),
            ),
            backoff_base_s=self.settings.mailer_backoff_base_ms / 1000,
            site=self.site,
            links=links_for(self.settings),
        )
        self._moodle: Engine | None = None

    async def on_stop(self) -> None:
        await self.sender.close()
        if self._moodle is not None:
            self._moodle.dispose()
        await super().on_stop()

    def consumptions(self) -> list[Consumption]:
        spec = mail_consumer(float(self.settings.bus_ack_wait_s), self.mail_max_deliver)
        chunk_loops = [Consumption(spec, handle=self.send_chunk) for _ in range(self.concurrency)]
        return [*super().consumptions(), *chunk_loops]

    def commands(self) -> dict[str, CommandHandler]:
        return {
            "dispatch_job": self.dispatch_job,
            "watch_email_queue": self.watch_email_queue,
            "retry_dead_letters": self.retry_dead_letters,
        }

    def health_details(self) -> dict[str, Any]:
        return {"emails_sent": getattr(getattr(self, "sender", None), "sent", 0)}

    async def send_chunk(self, payload: dict[str, Any], msg: Msg) -> None:
        letter = await self.sender.handle(payload, msg, max_deliver=self.mail_max_deliver)
        if letter is not None:
            seq = msg.metadata.sequence.stream if msg.metadata else None
            await dead_letter(self.bus, self.appdb, letter, seq)

    async def dispatch_job(self, payload: dict[str, Any], msg: Msg) -> None:
        try:
            job_id = int(payload["job"])
        except (KeyError, TypeError, ValueError):
            raise RejectMessage("dispatch_job needs a job id") from None
        try:
            await dispatch_job(
                self.bus,
                self.appdb,
                job_id,
                secret_key=self.settings.secret_key,
                cloud=SqsRoute(self.appdb, self.site.aws_endpoint_url, links_for(self.settings)),
                retry=payload.get("retry"),
            )
        except LookupError as exc:
            raise RejectMessage(str(exc)) from None

    def _moodle_engine(self):  # type: ignore[no-untyped-def]
        # Writable, for the one write ManiReports makes to Moodle (claiming IOMAD's queue).
        if self._moodle is None:
            self._moodle = make_engine(self.settings.moodle_database_url)
        return self._moodle

    async def watch_email_queue(self, payload: dict[str, Any], msg: Msg) -> None:
        tables = MoodleTables(self.settings.moodle_prefix)
        created = await asyncio.to_thread(
            claim_email_queue_rows,
            self._moodle_engine(),
            tables,
            self.appdb,
            self.settings.secret_key,
        )
        for job_id in created:  # dispatched as every new job is (common.mail.queue)
            await dispatch_async(self.bus.publish, job_id)
        # Jobs whose dispatch command never reached the bus are dispatched here and now. Long
        # enough that the command of a job created meanwhile has been handled by then.
        pending_s = float(payload.get("undispatched_after_s", UNDISPATCHED_AFTER_S))
        for job_id in await asyncio.to_thread(self._undispatched, pending_s):
            await dispatch_job(
                self.bus, self.appdb, job_id, secret_key=self.settings.secret_key,
                cloud=SqsRoute(self.appdb, self.site.aws_endpoint_url, links_for(self.settings)),
            )  # fmt: skip
        idle_s = float(payload.get("stalled_after_s", STALLED_AFTER_S))
        await resume_stalled_jobs(
            self.bus, self.appdb, idle_s=idle_s, now_tag=uuid.uuid4().hex[:12]
        )

    def _undispatched(self, idle_s: float) -> list[int]:
        with self.appdb.transaction() as session:
            return undispatched_jobs(session, idle_s)

    async def retry_dead_letters(self, payload: dict[str, Any], msg: Msg) -> None:
        only = payload.get("job")

        def reopen() -> list[int]:
            with self.appdb.transaction() as session:
                query = select(CloudDeadChunk.jobid).where(CloudDeadChunk.timeretried.is_(None))
                if only is not None:
                    query = query.where(CloudDeadChunk.jobid == int(only))
                reopened = []
                for job_id in sorted(set(session.scalars(query))):
                    job = session.get(CloudJob, job_id)
                    if job is not None and retry_dead_chunks(
                        session, job, actor_id=payload.get("actor")
                    ):
                        reopened.append(job_id)
                return reopened

        for job_id in await asyncio.to_thread(reopen):
            await dispatch_job(
                self.bus, self.appdb, job_id, secret_key=self.settings.secret_key,
                retry=uuid.uuid4().hex[:12],
            )  # fmt: skip
