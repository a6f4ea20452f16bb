"""How long a failed email chunk waits before its next attempt (the NAK delay).

Exponential backoff with full jitter: the delay is drawn uniformly from
[0, min(cap, base * 2**(attempt - 1))], so mailer replicas that failed together spread out
instead of retrying in lockstep against a provider that is already refusing them. When the
provider said how long to wait (Retry-After, X-RateLimit-Reset), that wait is honoured even
beyond ``cap`` (retrying sooner only earns another refusal) with up to ``base`` of jitter
added so the replicas still do not return at the same instant.
"""

from __future__ import annotations

import random

_rng = random.Random()
# 2**32 seconds is already beyond any cap; stops the power from growing without bound.
_MAX_EXPONENT = 32


def retry_delay(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 300.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    draw = (rng or _rng).uniform
    if retry_after is not None:
        return max(retry_after, 0.0) + draw(0.0, base)
    return draw(0.0, min(cap, base * 2 ** min(attempt - 1, _MAX_EXPONENT)))
