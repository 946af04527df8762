"""The retry policy on its own: the Standard Webhooks steps, jitter within bounds, Retry-After."""

from __future__ import annotations

import random

from distribution.schedule import RetryPolicy

SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


def test_each_wait_is_its_schedule_step_within_the_jitter_and_then_nothing():
    policy = RetryPolicy(SCHEDULE, jitter=0.1)
    rng = random.Random(7)

    waits = [policy.delay_after(failures, rng=rng) for failures in range(1, 10)]

    assert all(step * 0.9 <= wait <= step * 1.1 for wait, step in zip(waits, SCHEDULE[1:]))
    assert len({round(wait / step, 6) for wait, step in zip(waits, SCHEDULE[1:])}) > 1  # really spread
    assert policy.delay_after(10) is None and policy.attempts == 10


def test_retry_after_is_a_floor_not_a_shortcut_and_is_capped():
    policy = RetryPolicy(SCHEDULE, jitter=0, retry_after_max=3600)

    assert policy.delay_after(1, retry_after=120) == 120
    assert policy.delay_after(2, retry_after=1) == 300
    assert policy.delay_after(1, retry_after=10**9) == 3600
    assert policy.delay_after(10, retry_after=1) is None
