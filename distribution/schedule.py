"""When to try a failed delivery again. Pure: no Django, no clock of its own."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """`schedule[k]` is the wait in seconds before attempt k+1 (`schedule[0]`, before the first, is
    0: immediately). Waits are spread by +/- `jitter` (a fraction) so that receivers coming back
    after an outage are not hit by every subscription in the same second."""

    schedule: Sequence[int]
    jitter: float = 0.1
    retry_after_max: float = 86400.0

    @property
    def attempts(self) -> int:
        return len(self.schedule)

    def delay_after(self, failures: int, *, retry_after: float | None = None,
                    rng: random.Random | None = None) -> float | None:
        """Seconds to wait after the `failures`-th failed attempt in a row, or None when the
        schedule is exhausted. A receiver's Retry-After (429, 503) is honoured: we never come back
        sooner than it asks, nor sooner than the schedule says."""
        if failures >= self.attempts:
            return None
        base = float(self.schedule[failures])
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1.0
        delay = base * spread
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), self.retry_after_max))
        return delay
