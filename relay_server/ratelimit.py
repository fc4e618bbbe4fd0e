"""Token buckets, keyed (per username, address, device, account) or inline per connection."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from .config import RateLimit


class Bucket:
    """One token bucket. `take()` returns 0.0 when allowed, else seconds until a token."""

    __slots__ = ("_burst", "_rate", "stamp", "tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._rate = limit.rate
        self._burst = limit.burst
        self.tokens = limit.burst
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> float:
        tokens = self.tokens + (now - self.stamp) * self._rate
        tokens = min(tokens, self._burst)
        self.stamp = now
        if tokens < cost:
            self.tokens = tokens
            return (cost - tokens) / self._rate
        self.tokens = tokens - cost
        return 0.0

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self._rate >= self._burst


class KeyedLimiter:
    """Buckets by key. Full buckets are forgotten so the table stays bounded by activity."""

    def __init__(
        self,
        limit: RateLimit,
        clock: Callable[[], float] = time.monotonic,
        prune_above: int = 10_000,
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._prune_above = prune_above
        self._buckets: dict[Hashable, Bucket] = {}

    def take(self, key: Hashable) -> float:
        """0.0 if allowed; otherwise the Retry-After delay in seconds."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._prune_above:
                self._prune(now)
            bucket = self._buckets[key] = Bucket(self._limit, now)
        return bucket.take(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
