"""The shared quota as the provider sees it: tokens taken long before a send are taken again.

A sender takes tokens, then claims its recipients and renders them; when that took long (a busy
database, slow attachments), the batch would arrive in the same window as sends whose tokens
were taken since, and the provider would count more than its quota. Run in-process against a
real NATS KV bucket, a real app DB and the SMTP sink; the attachments hook (the slow step
certificates add in production) is what takes the time here.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from common.bus import Bus
from services.mailer.delivery import ChunkSender
from services.mailer.ratelimit import TOKENS_FRESH_S, RateLimiter, burst_for
from tests.services.mailer.conftest import COMPANY_A, configure, make_job, smtp_config
from tests.support import TEST_SECRET

RATE = 50.0


class CountingLimiter(RateLimiter):
    """The real limiter, recording what each call asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[int] = []

    async def acquire(self, key: str, count: int, rate_per_s: float) -> None:
        self.asked.append(count)
        await super().acquire(key, count, rate_per_s)


class Msg:
    """What the sender reads of a JetStream message: its delivery count and in_progress()."""

    metadata = SimpleNamespace(num_delivered=1)

    async def in_progress(self) -> None:
        return None


def send_one_chunk(nats_url: str, appdb, job_id: int, hook_delay_s: float) -> list[int]:  # type: ignore[no-untyped-def]
    async def slow_attachments(templates, config, rows):  # type: ignore[no-untyped-def]
        await asyncio.sleep(hook_delay_s)
        return rows

    async def scenario() -> list[int]:
        bus = await Bus.connect(nats_url, name="pacing")
        await bus.ensure_streams()
        limiter = CountingLimiter(await bus.key_value("mail_rate"))
        sender = ChunkSender(appdb, limiter, secret_key=TEST_SECRET, lease_s=60,
                             instance="test", attachments=slow_attachments)  # fmt: skip
        ids = list(range(1, burst_for(RATE) + 1))
        try:
            assert await sender.handle({"job": job_id, "ids": ids}, Msg(), max_deliver=8) is None
        finally:
            await sender.close()
            await bus.close()
        return limiter.asked

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("hook_delay_s", "takes"),
    [(0.0, 1), (TOKENS_FRESH_S + 0.3, 2)],
    ids=["fresh-tokens-once", "stale-tokens-again"],
)
def test_tokens_older_than_the_fresh_window_are_taken_again_before_sending(
    fresh_nats, appdb, smtp_sink, hook_delay_s, takes
):
    burst = burst_for(RATE)
    configure(appdb, COMPANY_A, "smtp", smtp_config(smtp_sink), chunk_size=burst, rate_per_s=RATE)
    job_id = make_job(appdb, burst, chunk_size=burst)

    asked = send_one_chunk(fresh_nats.url, appdb, job_id, hook_delay_s)

    assert asked == [burst] * takes
    counts = [len(smtp_sink.received(f"learner{i}@learners.example")) for i in range(burst)]
    assert counts == [1] * burst
