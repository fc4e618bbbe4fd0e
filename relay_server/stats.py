"""The relay's counters: frames and bytes forwarded, frames not forwarded (by reason),
failed authentications (by role), the closes the relay initiated (by code) and the
connections and requests it refused before they reached an endpoint (by reason).

Plain integers, bumped where things happen and read by the metrics collector only
when /metrics is scraped. Each kind of event is counted by one method, so each has
one spelling of its label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Stats:
    frames_routed: int = 0
    bytes_routed: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    auth_failures: Counter[str] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)

    def drop(self, reason: str) -> None:
        """A frame the relay did not forward (the reasons are listed in docs/RELAY.md)."""
        self.drops[reason] += 1

    def auth_failed(self, role: str) -> None:
        """An endpoint failed §4's challenge-response, its binding, or §4.1's control MAC."""
        self.auth_failures[role] += 1

    def closed(self, code: int) -> None:
        """The relay started closing a connection with `code`."""
        self.closes[code] += 1

    def refused(self, reason: str) -> None:
        """A connection or request refused before it reached an endpoint: reasons
        too_many_connections, request_timeout, hash_pool_busy, hash_pool_per_address."""
        self.refusals[reason] += 1
