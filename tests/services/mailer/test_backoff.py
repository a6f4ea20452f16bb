"""Retry delays: exponential growth, full jitter, the cap, and the provider's own wait."""

import random

import pytest

from services.mailer.backoff import retry_delay


def delays(attempt, samples=500, **kwargs):
    rng = random.Random(attempt)
    return [retry_delay(attempt, rng=rng, **kwargs) for _ in range(samples)]


@pytest.mark.parametrize("attempt", [1, 2, 3, 6])
def test_delay_is_jittered_over_the_whole_exponential_window(attempt):
    window = 2.0 * 2 ** (attempt - 1)

    drawn = delays(attempt, base=2.0, cap=1000.0)

    assert all(0.0 <= d <= window for d in drawn)
    assert min(drawn) < 0.1 * window
    assert max(drawn) > 0.9 * window


def test_window_doubles_with_each_attempt():
    ceilings = [max(delays(attempt, base=1.0, cap=1000.0)) for attempt in (1, 2, 3, 4)]

    assert ceilings == sorted(ceilings)
    assert ceilings[3] > 4 * ceilings[1] * 0.9


def test_cap_bounds_every_attempt_even_very_late_ones():
    assert all(d <= 60.0 for d in delays(10_000, base=1.0, cap=60.0))


def test_provider_retry_after_is_honoured_beyond_the_cap():
    drawn = delays(1, base=1.0, cap=60.0, retry_after=3600.0)

    assert all(3600.0 <= d <= 3601.0 for d in drawn)
    assert len(set(drawn)) > 1  # replicas told the same wait still spread out


def test_negative_retry_after_counts_as_now():
    assert all(0.0 <= d <= 1.0 for d in delays(1, retry_after=-5.0))


def test_attempts_count_from_one():
    with pytest.raises(ValueError, match="attempt"):
        retry_delay(0)
