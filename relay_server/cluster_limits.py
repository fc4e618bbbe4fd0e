"""Rate limits that hold across the nodes of a cluster: token buckets in Redis.

A client must not multiply its budget by spreading its requests or connections over
nodes, so these budgets live in Redis, each one a hash {t: tokens, s: stamp ms}
refilled and taken by one Lua script (atomic on the server, the server's clock):

- the HTTP limits (login, registration, password checks: per username or account and
  per client address) — `SharedLimiter.take`, one round trip per limit, which is
  nothing beside the password hash each such request costs;
- `PAIR_START` per (account, device) and per account — `SharedLimiter.take_all`, the
  two buckets in one round trip, stopping at the first that refuses (as on one node);
- the frame budget an account's controllers share (500/s, bursts of 1000) —
  `LeasedBucket`: the hot path must not wait for Redis on every frame, so each node
  takes tokens from the account's Redis bucket in leases (an eighth of the burst at a
  time, asked for when the local allowance runs low) and spends them locally. What
  the nodes can overspend together is bounded: at most two leases' worth per node (the
  lease it holds and the overdraft it may run while the next is on its way).

Keys expire once their bucket would be full again, so Redis holds only the buckets
that still have a debt. While Redis cannot be reached, an HTTP limit fails closed
(503 `busy`, Retry-After) and a lease falls back to the node's own bucket of the same
limit (per-node enforcement until Redis answers again: routing on a node never stops
because Redis is away).

Budgets that stay per node, and why: a device's frame budget (one connection per
device id in the whole cluster, and a reconnection gets a fresh bucket on one node
too); the password-hash pool and its per-address share (they protect the node's own
CPU); the caps of unauthenticated connections (the node's own memory and file
descriptors); controller connections per account (the node's memory).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Final

from .config import RateLimit
from .ratelimit import Bucket

if TYPE_CHECKING:
    import redis.asyncio as aioredis

_LOG = logging.getLogger("relay_server.cluster")

PREFIX: Final = "hs:rl:"

# What every script starts with: `refill` (a bucket's tokens at the server's time
# `now`, in ms; a bucket never seen is full), `store`, and `now`.
_REFILL: Final = """
local function refill(key, rate, burst, now)
  local b = redis.call('HMGET', key, 't', 's')
  local tokens = tonumber(b[1])
  if tokens == nil then
    return burst
  end
  return math.min(burst, tokens + math.max(0, now - tonumber(b[2])) / 1000 * rate)
end
local function store(key, tokens, rate, burst, now)
  redis.call('HSET', key, 't', tostring(tokens), 's', now)
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
end
local now_t = redis.call('TIME')
local now = now_t[1] * 1000 + math.floor(now_t[2] / 1000)
"""

# KEYS: the buckets, in order. ARGV: per key, rate (tokens/s) and burst; the last ARGV
# is the cost. Takes `cost` from each key in turn; the first that cannot give it stops
# the walk (and the later keys are not touched). Returns {0, 0} when all gave, else
# {index of the refusing key, ms until it could}.
TAKE_SCRIPT: Final = (
    _REFILL
    + """
local cost = tonumber(ARGV[#ARGV])
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tokens = refill(key, rate, burst, now)
  if tokens < cost then
    store(key, tokens, rate, burst, now)
    return {i, math.ceil((cost - tokens) / rate * 1000)}
  end
  store(key, tokens - cost, rate, burst, now)
end
return {0, 0}
"""
)

# KEYS[1]: one bucket; ARGV: rate, burst, wanted. Takes up to `wanted` whole tokens
# (what the bucket holds, if less) and returns how many it took.
LEASE_SCRIPT: Final = (
    _REFILL
    + """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = refill(KEYS[1], rate, burst, now)
local granted = math.min(tonumber(ARGV[3]), math.floor(tokens))
store(KEYS[1], tokens - granted, rate, burst, now)
return granted
"""
)


class SharedUnavailable(Exception):
    """Redis did not answer a rate-limit call."""


def _key(name: str, key: Hashable) -> str:
    if isinstance(key, tuple):
        text = ":".join(k.hex() if isinstance(k, bytes) else str(k) for k in key)
    elif isinstance(key, bytes):
        text = key.hex()
    else:
        text = str(key)
    return f"{PREFIX}{name}:{text}"


class SharedLimiter:
    """Token buckets in Redis, by limit name and key."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._take = redis.register_script(TAKE_SCRIPT)
        self._lease = redis.register_script(LEASE_SCRIPT)

    async def take(self, name: str, limit: RateLimit, key: Hashable) -> float:
        """0.0 if allowed; otherwise the Retry-After delay in seconds."""
        return (await self.take_all([(name, limit, key)]))[1]

    async def take_all(
        self, buckets: Sequence[tuple[str, RateLimit, Hashable]], cost: float = 1.0
    ) -> tuple[int, float]:
        """Take from each bucket in order, stopping at the first that refuses:
        (-1, 0.0) when all gave, else (its index, seconds until it could)."""
        keys = [_key(name, key) for name, _, key in buckets]
        args: list[Any] = []
        for _, limit, _ in buckets:
            args += [repr(float(limit.rate)), repr(float(limit.burst))]
        args.append(repr(float(cost)))
        try:
            refused, wait_ms = await self._take(keys=keys, args=args)
        except Exception as err:  # redis' errors, OSError, timeouts: one answer
            raise SharedUnavailable(str(err)) from err
        if int(refused) == 0:
            return -1, 0.0
        return int(refused) - 1, max(0.001, int(wait_ms) / 1000)

    async def lease(self, name: str, limit: RateLimit, key: Hashable, wanted: int) -> int:
        try:
            granted = await self._lease(
                keys=[_key(name, key)],
                args=[repr(float(limit.rate)), repr(float(limit.burst)), wanted],
            )
        except Exception as err:
            raise SharedUnavailable(str(err)) from err
        return int(granted)


def lease_size(limit: RateLimit) -> int:
    """Tokens one lease asks for: an eighth of the burst (at least one)."""
    return max(1, math.ceil(limit.burst / 8))


class LeasedBucket(Bucket):
    """An account's frame budget on one node of a cluster: spends tokens leased from
    the account's bucket in Redis (see the module docstring). `take` stays
    synchronous: a lease is asked for in the background when the allowance runs low,
    and while one is on its way the node may overdraw by up to one lease. `request`
    (the cluster's) asks Redis for `n` tokens and calls back with what it got, or
    with None when Redis did not answer (then the node's own bucket decides)."""

    __slots__ = ("_fallback", "_lease", "_pending", "_request")

    def __init__(
        self,
        limit: RateLimit,
        now: float,
        request: Callable[[LeasedBucket, int], None],
    ) -> None:
        super().__init__(limit, now)
        self._lease = lease_size(limit)
        self.tokens = 0.0
        self._pending = False
        self._request = request
        # The node's own bucket of the same limit, for while Redis does not answer.
        self._fallback: Bucket | None = None
        # The first lease is asked for by the first frame (an account's state exists
        # on every node with its devices, whose frames never draw on this budget).

    def _ask(self) -> None:
        if not self._pending:
            self._pending = True
            self._request(self, self._lease)

    def granted(self, tokens: int | None, now: float) -> None:
        """The answer to a lease request (None: Redis did not answer)."""
        self._pending = False
        if tokens is None:
            if self._fallback is None:
                self._fallback = Bucket(RateLimit(self._rate, self._burst), now)
            return
        self._fallback = None
        self.tokens += tokens
        if tokens == 0 and self.tokens < 0:
            # The account's budget is spent on the other nodes too: no overdraft left.
            self.tokens = -float(self._lease)

    def take(self, now: float, cost: float = 1.0) -> float:
        fallback = self._fallback
        if fallback is not None:
            self._ask()  # is Redis back?
            return fallback.take(now, cost)
        tokens = self.tokens - cost
        if tokens < -self._lease:
            self._ask()
            return cost / self._rate
        self.tokens = tokens
        if tokens < self._lease / 2:
            self._ask()
        return 0.0

    def full(self, now: float) -> bool:
        return False
