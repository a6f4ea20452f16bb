"""The shared send-rate quota: many limiters on one NATS KV bucket never exceed it together."""

from __future__ import annotations

import asyncio
import time

from common.bus import Bus
from services.mailer.ratelimit import BUCKET, PACE, RateLimiter, burst_for


def test_limiters_sharing_a_bucket_stay_within_burst_plus_rate_over_any_window(fresh_nats):
    rate, per_request = 500.0, 20
    grants: list[tuple[float, int]] = []

    async def scenario() -> None:
        buses = [await Bus.connect(fresh_nats.url, name=f"limiter-{i}") for i in range(4)]
        await buses[0].ensure_streams()
        limiters = [RateLimiter(await bus.key_value(BUCKET)) for bus in buses]
        deadline = time.time() + 2.0

        async def take(limiter: RateLimiter, company: str) -> None:
            while time.time() < deadline:
                await limiter.acquire(company, per_request, rate)
                grants.append((time.time(), per_request))
                await limiter.acquire("other", 1, 1_000_000)  # another company: no interference

        await asyncio.gather(*(take(limiter, "7") for limiter in limiters for _ in range(3)))
        for bus in buses:
            await bus.close()

    asyncio.run(scenario())
    grants.sort()
    burst = burst_for(rate)
    total = sum(count for _, count in grants)
    assert total > rate  # the limiters did take tokens all along
    for i, (start, _) in enumerate(grants):
        for window in (0.5, 1.0):
            taken = sum(c for t, c in grants[i:] if t < start + window)
            # Grant times are read after acquire returned: allow one request of slack. The
            # bucket fills at PACE of the quota (the margin for delivery jitter).
            assert taken <= burst + PACE * rate * window + per_request, (start, window, taken)


def test_no_quota_takes_no_time_and_asking_beyond_the_burst_is_an_error(fresh_nats):
    async def scenario() -> None:
        bus = await Bus.connect(fresh_nats.url, name="limiter")
        await bus.ensure_streams()
        limiter = await RateLimiter.open(bus)
        await limiter.acquire("1", 10_000, 0)
        try:
            await limiter.acquire("1", burst_for(10) + 1, 10)
        except ValueError as exc:
            assert "bucket" in str(exc)
        else:
            raise AssertionError("expected ValueError")
        await bus.close()

    asyncio.run(scenario())
