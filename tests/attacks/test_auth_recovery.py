"""Recovery from a link attacker who garbles every AUTH frame (issue 11, "Also keep").

While the attack lasts the device is offline: inherent, anyone on a plain ws:// link
can do that. Once it stops, the device must be back within seconds: failures after the
relay answered (TCP, websocket, AUTH_CHALLENGE) back off with a 5 s cap, not the 60 s
of an unreachable relay (firmware/README.md, relay link).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from .auth_garbling import recovery_times
from .proxy import Mitm

pytestmark = pytest.mark.micropython

ANSWERED_CAP_S = 5.0  # relay.py _ANSWERED_CAP_MS


async def test_auth_garbling_recovery_within_seconds(mitm: Mitm, tmp_path: Path) -> None:
    # 8 s of garbling: enough failures for the backoff to reach its cap (1, 2, 4, 5 s).
    times = await recovery_times(mitm, tmp_path / "device", runs=2, attack_s=8.0)
    print(f"\nrecovery after the attack: {[round(t, 2) for t in times]} s")
    assert max(times) <= ANSWERED_CAP_S + 2.0, times
    assert statistics.median(times) <= ANSWERED_CAP_S + 1.0, times
