"""Reconnect delays: exponential backoff with full jitter.

Attempt k (1-based) waits a uniformly random time in
[0, min(max_s, initial_s * 2 ** (k - 1))]. Full jitter spreads clients that
dropped together over the whole window instead of bunching them at its edge.
Attempts count from the last connection that stayed open ``stable_s`` after
its ``hello``: one cut sooner does not start the backoff over.
"""
from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class Backoff:
    """How long to wait before each reconnect attempt.

    ``random`` returns a float in [0, 1); pass a fixed function to make the
    delays predictable (tests, or a deliberate fixed schedule).

    ``stable_s``: a connection resets the backoff only once it has stayed
    open this long after its ``hello``. One that ends sooner counts as a
    failed attempt, so a gateway that cuts clients right after ``hello`` (a
    crash loop behind a load balancer, a gateway out of memory) sees them
    come back ever more slowly instead of every ``initial_s``. 0 resets on
    ``hello``.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    random: Callable[[], float] = field(default=_random.random, compare=False)
    stable_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.initial_s > 0:
            raise ValueError(f"Backoff.initial_s: expected a number > 0, got {self.initial_s!r}")
        if not self.max_s >= self.initial_s:
            raise ValueError(f"Backoff.max_s: expected a number >= initial_s ({self.initial_s}), got {self.max_s!r}")
        if not (isinstance(self.stable_s, (int, float)) and 0 <= self.stable_s < float("inf")):
            raise ValueError(f"Backoff.stable_s: expected a finite number >= 0, got {self.stable_s!r}")

    def cap(self, attempt: int) -> float:
        """The longest wait before attempt ``attempt`` (1-based)."""
        return min(self.max_s, self.initial_s * 2 ** min(max(attempt, 1) - 1, 60))

    def delay(self, attempt: int, retry_s: Optional[float] = None, first: Optional[bool] = None) -> float:
        """Seconds to wait before attempt ``attempt``.

        ``retry_s`` is the ``retryMs`` (in seconds) of the server's last
        ``bye``. The first attempt after it (``first``, by default attempt
        1) waits that long plus up to half of it again (at least up to
        ``initial_s``) at random, so that clients told to leave together
        come back spread out, and no less than the backoff of ``attempt``
        when connections cut short before it have taken it further; later
        attempts use the normal backoff, never less than ``retry_s``.
        """
        if retry_s is None:
            return self.random() * self.cap(attempt)
        if first is None:
            first = attempt <= 1
        if first:
            d = retry_s + self.random() * max(retry_s / 2, self.initial_s)
            return d if attempt <= 1 else max(d, self.random() * self.cap(attempt))
        return max(retry_s, self.random() * self.cap(attempt))
