"""How long to wait before reconnecting: exponential backoff with full jitter.

Full jitter (a delay drawn uniformly between 0 and the exponential bound) spreads a
crowd of clients that lost the server at the same moment, so a restart is not met
by every client at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delay before reconnection attempt ``n`` (1, 2, ...):
    uniform(``min_delay``, min(``max_delay``, ``base`` * 2 ** (n - 1)))."""

    base: float = 0.5
    """Seconds: the bound for the first attempt."""
    max_delay: float = 30.0
    """Seconds: the bound never grows past this."""
    min_delay: float = 0.05
    """Seconds: never reconnect in a tight loop."""
    max_attempts: int | None = None
    """Attempts before giving up; None tries for ever."""
    random: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        bound = min(self.max_delay, self.base * 2 ** min(attempt - 1, 32))
        return self.random.uniform(self.min_delay, max(self.min_delay, bound))

    def gives_up_after(self, attempt: int) -> bool:
        return self.max_attempts is not None and attempt >= self.max_attempts
