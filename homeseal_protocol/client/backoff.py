"""The reconnect and retry policy (PROTOCOL §2.1): jittered exponential backoff."""

from __future__ import annotations

import random
from typing import Final

MAX_RECONNECT_DELAY: Final = 60.0
MAX_HANDSHAKE_DELAY: Final = 60.0


def reconnect_delay(attempt: int) -> float:
    """§2.1: uniform in [0, min(60 s, 1 s · 2^attempt)] (full jitter, so a relay restart
    does not bring every controller back in the same second)."""
    return random.uniform(0, min(MAX_RECONNECT_DELAY, 2.0 ** min(attempt, 16)))


def handshake_retry_delay(failures: int) -> float:
    """Delay before handshaking again after `failures` failed attempts in a row: 2, 4, …
    capped at 60 s, so a device that keeps failing is never flooded."""
    return min(MAX_HANDSHAKE_DELAY, 2.0 ** min(failures, 6))
