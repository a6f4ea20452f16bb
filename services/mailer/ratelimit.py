"""A send-rate quota shared by every mailer replica: a token bucket kept in NATS KV.

Each company has one key holding ``{"tokens", "at"}``. Taking tokens is a compare-and-set:
read the entry, refill it for the time since ``at``, write it back with ``last=revision``; a
replica that lost the race (another wrote first) reads again. So all replicas, on any
number of machines, draw from one bucket, and over any window of W seconds at most
``burst + rate·W`` tokens are taken. ``burst`` is a fifth of a second's quota.

What the provider counts is arrivals, not takes: a batch whose tokens were taken at t arrives
at t + d, d being the claim, the render and the request itself. Over a window of W seconds the
provider then sees at most ``burst + rate·(W + d_max)``, so two margins keep a 10 s window
within 5% of the quota even on a loaded machine: the bucket fills at ``PACE`` (95%) of the
quota, and a sender whose tokens are older than ``TOKENS_FRESH_S`` when it is about to send
takes them again (the old ones are simply lost), which caps d_max at that plus one request.

Refill uses each replica's clock: replicas on different machines need NTP-synchronised
clocks (a skew of s seconds can let at most rate·s extra tokens through once).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Callable

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from common.bus import Bus

BUCKET = "mail_rate"
IDLE_TTL_S = 3600.0
BURST_SECONDS = 0.2
MAX_WAIT_S = 1.0
PACE = 0.95
TOKENS_FRESH_S = 0.5


def burst_for(rate_per_s: float) -> int:
    """Most tokens the bucket holds; callers never ask for more at once."""
    return max(1, math.floor(rate_per_s * PACE * BURST_SECONDS))


class RateLimiter:
    def __init__(self, kv: KeyValue, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._clock = clock
        self._rng = random.Random()

    @classmethod
    async def open(cls, bus: Bus) -> RateLimiter:
        return cls(await bus.key_value(BUCKET, ttl_s=IDLE_TTL_S))

    async def acquire(self, key: str, count: int, rate_per_s: float) -> None:
        """Wait until ``count`` tokens could be taken from ``key``'s bucket, and take them."""
        if rate_per_s <= 0 or count <= 0:
            return
        burst = burst_for(rate_per_s)
        rate_per_s *= PACE
        if count > burst:
            raise ValueError(f"asked for {count} tokens from a bucket of {burst}")
        subject = f"company_{key}"
        while True:
            now = self._clock()
            try:
                entry = await self._kv.get(subject)
            except KeyNotFoundError:
                entry = None
            if entry is None or not entry.value:
                tokens, revision = float(burst), None
            else:
                state = json.loads(entry.value)
                elapsed = max(0.0, now - float(state["at"]))
                tokens = min(float(burst), float(state["tokens"]) + elapsed * rate_per_s)
                revision = entry.revision
            if tokens >= count:
                value = json.dumps({"tokens": tokens - count, "at": now}).encode()
                try:
                    if revision is None:
                        await self._kv.create(subject, value)
                    else:
                        await self._kv.update(subject, value, last=revision)
                    return
                except KeyWrongLastSequenceError:
                    # Another replica took tokens first: read again (tiny jitter against lockstep).
                    await asyncio.sleep(self._rng.uniform(0, 0.002))
                    continue
            wait = (count - tokens) / rate_per_s
            await asyncio.sleep(min(MAX_WAIT_S, wait) + self._rng.uniform(0, 0.002))
