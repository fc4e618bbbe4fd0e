"""A link attacker who garbles every AUTH_CHALLENGE on the device's link, and the time the
device needs to come back once the attack stops (tests/attacks/test_auth_recovery.py and
`benchmarks/firmware_bench.py --auth-recovery N`).

While the attack lasts, every connection fails after the relay answered (TCP, the
websocket upgrade and the challenge worked): the device's MAC covers the garbled nonce,
the relay closes with 4001. The device retries within its backoff; recovery is the time
from the end of the attack to the device's next `relay connected`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from testbed.firmware import DeviceProcess

from .proxy import DEVICE, DOWN, UP, Mitm

AUTH_CHALLENGE = 0x01
CHALLENGE_FRAME = 11 + 64  # header ‖ relay key (32) ‖ nonce (32)


def garble_challenges(link: str, direction: str, data: bytes) -> list[bytes]:
    """Flip one bit of the nonce of every AUTH_CHALLENGE on its way to the device."""
    challenge = data[:1] == bytes((AUTH_CHALLENGE,)) and len(data) == CHALLENGE_FRAME
    if link == DEVICE and direction == DOWN and challenge:
        return [data[:-1] + bytes((data[-1] ^ 0x01,))]
    return [data]


async def recovery_times(
    mitm: Mitm, workdir: Path, runs: int, attack_s: float, **device: Any
) -> list[float]:
    """Start a device behind `mitm`, then `runs` times: garble for `attack_s`, stop, and
    measure the seconds until the device is connected again."""
    dev = DeviceProcess(workdir, mitm.ws_device, **device)
    dev.start()
    times: list[float] = []
    try:
        await dev.wait_log_async("relay connected")
        for _ in range(runs):
            connected = dev.count_log("relay connected")
            refused = dev.count_log("relay closed 4001")
            mitm.hook = garble_challenges
            # End the live connection too (a frame of an unknown type: the relay closes
            # with 4000); every connection after it meets the garbling.
            await mitm.inject(DEVICE, dev.device_id, UP, b"\xee" + bytes(10))
            await asyncio.sleep(attack_s)
            mitm.hook = None
            stopped = time.monotonic()
            assert dev.count_log("relay closed 4001") > refused, "the attack did not bite"
            await dev.wait_log_async("relay connected", count=connected + 1, within=90)
            times.append(time.monotonic() - stopped)
            # Let the link settle (a connection that lasted 30 s would reset the backoff:
            # each run starts from where the last attack left the device).
            await asyncio.sleep(0.5)
    finally:
        mitm.hook = None
        dev.stop()
    return times
