"""Slows down guessing at the token endpoint: failed client authentications, per key.

Each key (a client id, a client address) may fail ``burst`` times at once and
then ``per_minute`` times a minute; past that its requests are refused with
429 and ``Retry-After`` before any secret is checked. Successes cost nothing.
Like :mod:`connector.tenancy.ratelimit`, the counts live in this process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_MAX_KEYS = 10_000
"""Keys remembered at most; an attacker cycling through made-up client ids cannot grow memory."""


@dataclass
class _Allowance:
    failures_left: float
    updated: float


class FailureThrottle:
    """Counts failures per key in a token bucket refilled at ``per_minute``."""

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._allowances: dict[str, _Allowance] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it may try now."""
        with self._lock:
            allowance = self._current(key)
            if allowance is None or allowance.failures_left >= 1:
                return None
            return (1 - allowance.failures_left) / self._rate

    def record_failure(self, key: str) -> None:
        with self._lock:
            allowance = self._current(key)
            if allowance is None:
                if len(self._allowances) >= _MAX_KEYS:
                    self._forget_recovered()
                allowance = self._allowances[key] = _Allowance(self._burst, self._clock())
            allowance.failures_left = max(0.0, allowance.failures_left - 1)

    def _current(self, key: str) -> _Allowance | None:
        allowance = self._allowances.get(key)
        if allowance is not None:
            now = self._clock()
            allowance.failures_left = min(
                self._burst, allowance.failures_left + (now - allowance.updated) * self._rate
            )
            allowance.updated = now
        return allowance

    def _forget_recovered(self) -> None:
        now = self._clock()
        for key, allowance in list(self._allowances.items()):
            if allowance.failures_left + (now - allowance.updated) * self._rate >= self._burst:
                del self._allowances[key]
        if len(self._allowances) >= _MAX_KEYS:
            # Everyone is failing: forget the oldest half rather than grow.
            by_age = sorted(self._allowances, key=lambda k: self._allowances[k].updated)
            for key in by_age[: _MAX_KEYS // 2]:
                del self._allowances[key]
