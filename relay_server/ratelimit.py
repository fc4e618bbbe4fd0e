"""Token buckets, keyed (per username, address, account, (account, device)) or inline
per connection.

A `KeyedLimiter`'s memory is bounded twice: by the number of keys it remembers and by
the bytes those keys take (`key_size`); each entry adds a fixed `ENTRY_OVERHEAD` on top.
Keys are kept in least-recently-used order, so the buckets that have refilled (and
can be forgotten without giving anyone a token back) gather at the front. A new key
that finds the table full, after the refilled buckets at the front are forgotten, is
refused as if its bucket were empty: a flood of new keys can never evict a bucket
that still holds a debt (which would hand its owner fresh tokens).
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final

from .config import RateLimit

# Bytes one entry costs besides its key: the Bucket (slots: 4 references, 2 floats)
# and the OrderedDict's entry (hash table slot and link node), rounded up.
ENTRY_OVERHEAD: Final = 256


def key_size(key: Hashable) -> int:
    """The bytes a key holds (sys.getsizeof, summed over a tuple's items)."""
    if type(key) is tuple:
        return sys.getsizeof(key) + sum(key_size(k) for k in key)
    return sys.getsizeof(key)


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
    """Buckets by key, at most `max_entries` of them holding at most `max_key_bytes`."""

    def __init__(
        self,
        limit: RateLimit,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
        max_key_bytes: int = 2 * 1024 * 1024,
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._max_entries = max_entries
        self._max_key_bytes = max_key_bytes
        self._buckets: OrderedDict[Hashable, tuple[Bucket, int]] = OrderedDict()
        self._key_bytes = 0

    @property
    def limit(self) -> RateLimit:
        return self._limit

    def take(self, key: Hashable) -> float:
        """0.0 if allowed; otherwise the Retry-After delay in seconds."""
        now = self._clock()
        entry = self._buckets.get(key)
        if entry is not None:
            self._buckets.move_to_end(key)
            return entry[0].take(now)
        size = key_size(key)
        if size > self._max_key_bytes:
            return 1 / self._limit.rate
        self._forget_refilled(now)
        while self._buckets and (
            len(self._buckets) >= self._max_entries or self._key_bytes + size > self._max_key_bytes
        ):
            oldest_key, (oldest, oldest_size) = next(iter(self._buckets.items()))
            if not oldest.full(now):
                # Every remembered bucket still holds a debt: refuse the newcomer.
                return 1 / self._limit.rate
            del self._buckets[oldest_key]
            self._key_bytes -= oldest_size
        bucket = Bucket(self._limit, now)
        self._buckets[key] = (bucket, size)
        self._key_bytes += size
        return bucket.take(now)

    def _forget_refilled(self, now: float) -> None:
        """Forget the refilled buckets at the least-recently-used end (amortised O(1))."""
        buckets = self._buckets
        while buckets:
            key, (bucket, size) = next(iter(buckets.items()))
            if not bucket.full(now):
                return
            del buckets[key]
            self._key_bytes -= size

    def __len__(self) -> int:
        return len(self._buckets)

    @property
    def key_bytes(self) -> int:
        """Bytes held by the remembered keys (key_size)."""
        return self._key_bytes

    @property
    def nbytes(self) -> int:
        """The limiter's accounted memory: keys plus ENTRY_OVERHEAD per entry."""
        return self._key_bytes + ENTRY_OVERHEAD * len(self._buckets)

    @property
    def max_nbytes(self) -> int:
        """The bound on `nbytes`."""
        return self._max_key_bytes + ENTRY_OVERHEAD * self._max_entries
