"""Connections that are not (yet) an authenticated endpoint: their deadline and caps.

Every TCP connection the relay accepts is tracked here from the moment the HTTP layer
sees it (after the TLS handshake, whose own deadline is the listener's
ssl_handshake_timeout) until it becomes an authenticated websocket endpoint or
closes. While tracked:

- it must start its first request within `request_timeout_s` of the moment the HTTP
  layer sees it, and each later one on a kept-alive connection within
  `keepalive_timeout_s` of the previous response. A connection that does not is
  closed (counted as the refusal `request_timeout`); a websocket has finished its
  request once upgraded, and the challenge-response has its own 10 s deadline (§4);
- it counts against two caps: `unauthenticated_connections` in all and
  `unauthenticated_per_address` per client address. A request on a connection beyond
  either is answered 503 `too_many_connections` (JSON, Retry-After) and the connection
  closed, before any upgrade.

The client address is the TCP peer (its `address_key`); behind a proxy, the
X-Forwarded-For address of the connection's first request.

It also counts every close, which tells the relay when a flood has passed and freed
memory can go back to the system (`trim_memory`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from .accounts import ServiceError
from .addresses import address_key, client_address
from .config import Config
from .stats import Stats

_LOG = logging.getLogger("relay_server.guard")

# Closes since the last trim that make a flood worth a malloc_trim.
TRIM_AFTER_CLOSES: Final = 256
TRIM_INTERVAL_S: Final = 10.0


class _Tracked:
    __slots__ = ("address", "served", "timer", "upgraded")

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.timer: asyncio.TimerHandle | None = None
        self.served = False  # has completed a request (an idle keep-alive connection)
        self.upgraded = False


class ConnectionGuard:
    def __init__(self, config: Config, stats: Stats) -> None:
        self._timeout = config.request_timeout_s
        self._keepalive = config.keepalive_timeout_s
        self._behind_proxy = config.behind_proxy
        self._max = config.limits.unauthenticated_connections
        self._max_per_address = config.limits.unauthenticated_per_address
        self._stats = stats
        self._conns: dict[Any, _Tracked] = {}
        self._per_address: Counter[str] = Counter()
        self.closes = 0  # every close of a connection the guard saw opened

    @property
    def unauthenticated(self) -> int:
        """Connections open now that are not an authenticated endpoint."""
        return len(self._conns)

    def per_address(self, address: str) -> int:
        return self._per_address[address]

    # --- the connection's life (from the request handler) ------------------------

    def opened(self, handler: Any, transport: asyncio.Transport) -> None:
        address = None
        if not self._behind_proxy:
            peer = transport.get_extra_info("peername")
            address = address_key(str(peer[0])) if peer else None
        tracked = self._conns[handler] = _Tracked(address)
        if address is not None:
            self._per_address[address] += 1
        self._arm(handler, tracked)

    def lost(self, handler: Any) -> None:
        self.closes += 1
        self._forget(handler)

    def _arm(self, handler: Any, tracked: _Tracked) -> None:
        if tracked.timer is not None:
            tracked.timer.cancel()
        delay = self._keepalive if tracked.served else self._timeout
        tracked.timer = asyncio.get_running_loop().call_later(delay, self._expire, handler)

    def _expire(self, handler: Any) -> None:
        tracked = self._conns.get(handler)
        if tracked is None:
            return
        tracked.timer = None
        self._stats.refused("request_timeout")
        transport = handler.transport
        if transport is not None:
            if tracked.served:
                transport.close()  # an idle keep-alive connection: an orderly close
            else:
                transport.abort()  # never completed a request: no TLS close_notify wait

    def _forget(self, handler: Any) -> _Tracked | None:
        tracked = self._conns.pop(handler, None)
        if tracked is None:
            return None
        if tracked.timer is not None:
            tracked.timer.cancel()
            tracked.timer = None
        if tracked.address is not None:
            left = self._per_address[tracked.address] - 1
            if left > 0:
                self._per_address[tracked.address] = left
            else:
                del self._per_address[tracked.address]
        return tracked

    # --- requests (from the middleware and the websocket handlers) ---------------

    def request_started(self, request: web.Request) -> None:
        """A request's headers are in: stop its deadline, enforce the caps."""
        tracked = self._conns.get(request.protocol)
        if tracked is None:
            return  # an authenticated endpoint, or a server without this guard's handler
        if tracked.timer is not None:
            tracked.timer.cancel()
            tracked.timer = None
        if tracked.address is None and self._behind_proxy:
            tracked.address = client_address(request, behind_proxy=True)
            self._per_address[tracked.address] += 1
        if len(self._conns) > self._max or (
            tracked.address is not None
            and self._per_address[tracked.address] > self._max_per_address
        ):
            self._stats.refused("too_many_connections")
            raise ServiceError(
                "too_many_connections",
                "too many connections that are not authenticated; retry later",
                math.ceil(self._timeout),
            )

    def request_finished(self, request: web.Request) -> None:
        """A response is out: a kept-alive connection must start its next request in time."""
        tracked = self._conns.get(request.protocol)
        if tracked is None or tracked.upgraded or request.protocol.transport is None:
            return
        tracked.served = True
        self._arm(request.protocol, tracked)

    def upgraded(self, request: web.Request) -> None:
        """The websocket upgrade is done: the challenge-response deadline applies now."""
        tracked = self._conns.get(request.protocol)
        if tracked is not None:
            tracked.upgraded = True

    def authenticated(self, request: web.Request) -> None:
        """The connection is an authenticated endpoint: it leaves the caps."""
        self._forget(request.protocol)


def guard_middleware(guard: ConnectionGuard) -> Any:
    """The middleware that tells `guard` when requests start and end."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        guard.request_started(request)
        try:
            return await handler(request)
        finally:
            guard.request_finished(request)

    return middleware


# --- returning memory after a flood ---------------------------------------------------


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


async def trim_memory(guard: ConnectionGuard) -> None:
    """Every TRIM_INTERVAL_S: after at least TRIM_AFTER_CLOSES connections closed,
    glibc's malloc_trim(0) hands the heap's free pages back to the system (asyncio's
    per-connection buffers are freed into the heap, which otherwise keeps them)."""
    trim = _load_malloc_trim()
    if trim is None:
        _LOG.info("malloc_trim not available: memory freed after a flood stays mapped")
        return
    loop = asyncio.get_running_loop()
    seen = guard.closes
    settle = False
    while True:
        await asyncio.sleep(TRIM_INTERVAL_S)
        closes, seen = guard.closes - seen, guard.closes
        if closes >= TRIM_AFTER_CLOSES:
            settle = True  # the flood goes on, or has just passed
        elif settle:
            settle = False  # the first quiet interval after it: once more, then rest
        else:
            continue
        await loop.run_in_executor(None, trim, 0)
