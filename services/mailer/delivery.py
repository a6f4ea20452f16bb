"""Sending one chunk of a job: take rate tokens, claim recipients, render, send, record.

Exactly-once in practice, at-least-once at worst. Each sub-batch (one provider request) is
claimed with a conditional UPDATE (`pending` → `sending` under a fresh claim token) before
the provider call, and its outcomes are written as soon as the call returns. A redelivered
chunk skips `sent` and `failed` recipients and recipients another mailer holds. A `sending`
claim older than the ack wait belongs to a mailer that died: those recipients are sent
again. So a mailer killed between provider calls loses and duplicates nothing; a mailer
killed *inside* a provider call can make the recipients of that one request (at most one
sub-batch per chunk in flight) receive the message twice. That is the side we choose: a
duplicated welcome email is a nuisance, a lost one (with a temporary password in it) is a
user who cannot sign in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy import select

from common.appdb import AppDB
from common.errors import FieldError
from common.mail.config import CompanyMailConfig, load_config
from common.mail.job_status import change_status, finish_if_done
from common.mail.site import MailSite
from common.mail.unsubscribe import (
    HONOURS_UNSUBSCRIBE,
    SKIPPED_REASON,
    UnsubscribeLinks,
    unsubscribed_among,
)
from common.metrics import MAIL_MESSAGES, count_mail_outcomes
from common.models.mail import (
    JOB_CANCELLED,
    JOB_PENDING,
    JOB_PROCESSING,
    JOB_QUEUED,
    CloudJob,
)
from common.service import RejectMessage, RetryLater
from services.mailer.backoff import retry_delay
from services.mailer.claims import RecipientClaims
from services.mailer.messages import JobTemplates, render_messages
from services.mailer.providers import (
    EmailProvider,
    PermanentSendError,
    ProviderThrottled,
    SendOutcome,
    TransientSendError,
    get_provider,
)
from services.mailer.ratelimit import TOKENS_FRESH_S, RateLimiter, burst_for

log = logging.getLogger(__name__)

# Recipients per claim and provider request. SMTP sends a request's messages one after the
# other, so a crash inside a request can duplicate the ones already accepted: kept small.
# An HTTP batch call (SES, SendGrid, Mailgun) is accepted or not as a whole, so it takes the
# provider's own maximum (still within the chunk).
SUB_BATCH_MAX = {"smtp": 50}
CONFIG_TTL_S = 5.0


@dataclass
class ChunkResult:
    sent: int = 0
    failed: int = 0
    retry_after_s: float | None = None
    errors: list[str] = field(default_factory=list)


class ChunkSender:
    """Sends chunks for one mailer process; caches templates, settings and providers."""

    def __init__(
        self,
        appdb: AppDB,
        limiter: RateLimiter,
        *,
        secret_key: str,
        lease_s: float,
        instance: str,
        attachments: Any = None,
        backoff_base_s: float = 1.0,
        site: MailSite | None = None,
        links: UnsubscribeLinks | None = None,
    ) -> None:
        self.appdb = appdb
        # Signed unsubscribe links for jobs that honour them (None: no List-Unsubscribe).
        self.links = links
        self.claims = RecipientClaims(appdb, lease_s)
        self.site = site or MailSite()
        self.limiter = limiter
        self.secret_key = secret_key
        self.lease_s = lease_s
        self.instance = instance
        # Hook for per-recipient extras (certificates): async (templates, config, rows) -> rows
        self.attachments = attachments
        self.backoff_base_s = backoff_base_s
        self.sent = 0
        self._templates: dict[int, JobTemplates] = {}
        self._configs: dict[int, tuple[float, CompanyMailConfig | None]] = {}
        self._providers: dict[int, tuple[str, EmailProvider]] = {}
        self._started_jobs: set[int] = set()

    async def close(self) -> None:
        for _, provider in self._providers.values():
            await provider.close()
        self._providers.clear()

    # -- the handler --------------------------------------------------------------------------
    async def handle(self, payload: dict[str, Any], msg: Msg, *, max_deliver: int) -> dict | None:
        """Send a chunk. Returns a dead letter (dict) when it used up its deliveries."""
        try:
            job_id = int(payload["job"])
            ids = [int(i) for i in payload["ids"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise RejectMessage(f"malformed mail chunk: {exc}") from None
        status, templates = await asyncio.to_thread(self._job, job_id)
        if status is None:
            raise RejectMessage(f"mail chunk for unknown job {job_id}")
        if status == JOB_CANCELLED or templates is None:
            return None
        attempt = msg.metadata.num_delivered if msg.metadata else 1
        config = await self._config(templates.company_id)
        result = ChunkResult()
        if config is None:
            result.errors.append(f"company {templates.company_id} has no email offload settings")
            result.retry_after_s = 30.0
        else:
            if job_id not in self._started_jobs:
                await asyncio.to_thread(self._mark_processing, job_id)
                self._started_jobs.add(job_id)
            await self._send_chunk(templates, config, ids, msg, result)
        left, held_until = await asyncio.to_thread(self.claims.left_to_send, job_id, ids)
        if not left:
            await asyncio.to_thread(self._finish, job_id)
            return None
        reason = "; ".join(result.errors[-3:]) or "recipients still held by another mailer"
        if attempt >= max_deliver:
            return {**payload, "reason": reason, "deliveries": attempt}
        if result.errors:
            delay = retry_delay(
                attempt, base=self.backoff_base_s, cap=60.0, retry_after=result.retry_after_s
            )
        else:
            delay = max(held_until, 0.5)
        raise RetryLater(reason, delay_s=delay)

    async def _send_chunk(
        self,
        templates: JobTemplates,
        config: CompanyMailConfig,
        ids: list[int],
        msg: Msg,
        result: ChunkResult,
    ) -> None:
        try:
            provider = await self._provider(config)
        except FieldError as exc:
            # Our own check of the stored settings: safe to show.
            result.errors.append(f"provider settings: {exc}")
            result.retry_after_s = 60.0
            return
        cap = SUB_BATCH_MAX.get(provider.type_name, provider.max_batch_size)
        size = min(provider.max_batch_size, cap, len(ids) or 1)
        if config.rate_per_s > 0:
            size = min(size, burst_for(config.rate_per_s))
        for start in range(0, len(ids), size):
            group = ids[start : start + size]
            token = uuid.uuid4().hex
            # Tokens first, then the claim: a wait for the shared quota (as long as the other
            # replicas keep it busy) must not age a claim, or another mailer would take the
            # recipients as a dead mailer's and send them again.
            await self.limiter.acquire(str(config.company_id), len(group), config.rate_per_s)
            tokens_taken_at = time.monotonic()
            claimed = await asyncio.to_thread(self.claims.claim, templates.job_id, group, token)
            if not claimed:
                continue
            if templates.job_type in HONOURS_UNSUBSCRIBE:
                claimed = await asyncio.to_thread(
                    self._skip_unsubscribed, templates, claimed, token
                )
                if not claimed:
                    continue
            if self.attachments is not None:
                claimed = await self.attachments(templates, config, claimed)
            messages, unrenderable = render_messages(templates, claimed, links=self.links)
            if messages and time.monotonic() - tokens_taken_at > TOKENS_FRESH_S:
                # A slow claim (a busy database) would send on tokens of a moment long past,
                # into the same window as the sends taken since: take fresh ones.
                await self.limiter.acquire(str(config.company_id), len(messages), config.rate_per_s)
            try:
                outcomes = await provider.send_batch(messages) if messages else []
            except (ProviderThrottled, TransientSendError) as exc:
                log.warning("job %s: %s: %s", templates.job_id, exc.reason, exc.detail)
                retry_after = getattr(exc, "retry_after_s", None)
                MAIL_MESSAGES.labels(provider.type_name, "deferred").inc(len(messages))
                await asyncio.to_thread(self.claims.release, group, token, exc.reason)
                result.errors.append(exc.reason)
                result.retry_after_s = retry_after
                return  # the provider is refusing now: the rest waits for the retry
            except PermanentSendError as exc:
                log.warning("job %s: %s: %s", templates.job_id, exc.reason, exc.detail)
                outcomes = [SendOutcome(m.recipient_id, "failed", error=exc.reason)
                            for m in messages]  # fmt: skip
            outcomes = [*outcomes, *unrenderable]
            _log_outcomes(templates.job_id, outcomes)
            count_mail_outcomes(provider.type_name, outcomes)
            await asyncio.to_thread(self.claims.record, templates.job_id, token, outcomes)
            for outcome in outcomes:
                if outcome.status == "sent":
                    result.sent += 1
                elif outcome.status == "failed":
                    result.failed += 1
                elif outcome.status == "retry":
                    result.errors.append(outcome.error or "retry")
                    if outcome.retry_after_s is not None:
                        result.retry_after_s = max(result.retry_after_s or 0, outcome.retry_after_s)
            self.sent += sum(o.status == "sent" for o in outcomes)
            await msg.in_progress()

    # -- caches -------------------------------------------------------------------------------
    async def _config(self, company_id: int) -> CompanyMailConfig | None:
        cached = self._configs.get(company_id)
        if cached and time.monotonic() - cached[0] < CONFIG_TTL_S:
            return cached[1]
        config = await asyncio.to_thread(self._load_config, company_id)
        self._configs[company_id] = (time.monotonic(), config)
        return config

    def _load_config(self, company_id: int) -> CompanyMailConfig | None:
        with self.appdb.transaction() as session:
            return load_config(session, company_id, self.secret_key)

    async def _provider(self, config: CompanyMailConfig) -> EmailProvider:
        cached = self._providers.get(config.company_id)
        if cached and cached[0] == config.version:
            return cached[1]
        site = self.site.for_company(config.allow_private_smtp_host)
        provider = get_provider(config.provider, config.provider_settings(), site)
        if cached:
            await cached[1].close()
        self._providers[config.company_id] = (config.version, provider)
        return provider

    # -- DB (run in worker threads) -----------------------------------------------------------
    def _job(self, job_id: int) -> tuple[str | None, JobTemplates | None]:
        with self.appdb.transaction() as session:
            status = session.scalar(select(CloudJob.status).where(CloudJob.id == job_id))
            if status is None:
                return None, None
            templates = self._templates.get(job_id)
            if templates is None:
                job = session.get(CloudJob, job_id)
                assert job is not None
                payload = json.loads(job.payload or "{}")
                templates = JobTemplates(
                    job_id=job.id,
                    company_id=job.companyid,
                    job_type=job.type,
                    subject=job.subject_template,
                    html=job.html_template,
                    text=job.text_template,
                    variables=payload.get("variables", {}),
                    certificate_html=payload.get("certificate_html"),
                )
                self._templates[job_id] = templates
            return status, templates

    def _skip_unsubscribed(
        self, templates: JobTemplates, claimed: list[Any], token: str
    ) -> list[Any]:
        """Record claimed recipients who unsubscribed from the company as skipped (checked
        at send time, so an unsubscribe counts from the next sub-batch on); the others."""
        with self.appdb.transaction() as session:
            gone = unsubscribed_among(session, templates.company_id, (row[1] for row in claimed))
        if not gone:
            return claimed
        skipped = [row for row in claimed if row[1].strip().lower() in gone]
        outcomes = [SendOutcome(row[0], "skipped", error=SKIPPED_REASON) for row in skipped]
        self.claims.record(templates.job_id, token, outcomes)
        log.info("job %s: %d unsubscribed recipients skipped", templates.job_id, len(skipped))
        return [row for row in claimed if row[1].strip().lower() not in gone]

    def _mark_processing(self, job_id: int) -> None:
        with self.appdb.transaction() as session:
            job = session.get(CloudJob, job_id)
            if job is not None and job.status in (JOB_PENDING, JOB_QUEUED):
                change_status(session, job, JOB_PROCESSING, allowed_from=(JOB_PENDING, JOB_QUEUED))

    def _finish(self, job_id: int) -> None:
        with self.appdb.transaction() as session:
            final = finish_if_done(session, job_id)
        if final:
            self._templates.pop(job_id, None)
            log.info("job %s finished: %s", job_id, final)


def _log_outcomes(job_id: int, outcomes: Sequence[SendOutcome]) -> None:
    """What the provider said about refused and deferred recipients: the log only."""
    for outcome in outcomes:
        if outcome.status != "sent":
            log.info("job %s recipient %s %s: %s (%s)", job_id, outcome.recipient_id,
                     outcome.status, outcome.error, outcome.detail or "-")  # fmt: skip
