"""The routing layer of one relay, assembled: the `Router` the app keeps (app[ROUTER]).

Its parts, one job each:

- `connections`: the connection types (one per role), relay-built frames, `Closer`;
- `registry`: who is connected, accounts' live state, presence, pairing peers, the
  HTTP API's account events, and the relay's `Closer` and `Stats`;
- `forwarding`: the hot path (SESSION, PAIR, PAIR_START), ERROR answers, `Verdict`;
- `control`: CLAIM and RELEASE;
- `stats`: the counters /metrics reads;
- on a cluster, `cluster` (relay_server.cluster, attached by the app): presence,
  inboxes and events on Redis, for what is not on this node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from homeseal_protocol.envelope import CloseCode

from .config import Limits
from .control import Control
from .forwarding import Forwarding
from .registry import Registry
from .stats import Stats
from .storage import Storage

if TYPE_CHECKING:
    from .cluster import Cluster


class Router:
    def __init__(
        self,
        storage: Storage,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        stats: Stats | None = None,
    ) -> None:
        self.stats = stats if stats is not None else Stats()
        self.registry = Registry(limits, self.stats, clock, wall_clock)
        self.forwarding = Forwarding(self.registry, limits, clock)
        self.control = Control(self.registry, storage, wall_clock)
        self.shutting_down = False
        self.cluster: Cluster | None = None

    async def online(self, device_ids: Iterable[bytes]) -> set[bytes]:
        """Which of these devices are connected: to this node, or to another node of
        the cluster (its presence key)."""
        ids = list(device_ids)
        here = {d for d in ids if self.registry.is_online(d)}
        if self.cluster is None:
            return here
        return here | await self.cluster.online([d for d in ids if d not in here])

    async def shutdown(self) -> None:
        """Graceful shutdown: refuse new upgrades, tell every peer the relay is
        restarting (1012) and wait for the close handshakes."""
        self.shutting_down = True
        closer = self.registry.closer
        for conn in self.registry.connections():
            closer.close(conn, CloseCode.RESTARTING)
        await closer.wait()
