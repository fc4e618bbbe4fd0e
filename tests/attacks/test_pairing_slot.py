"""L1 from the device's link: an attacker who injects PAIR_START after PAIR_START under a
stranger's controller id (20 a second, past any relay budget: the frames never cross the
relay) cannot keep the owner out of pairing for more than one attempt slot.

The device holds one attempt slot at a time, for at most the attempt timeout from the
PAIR_START that took it; a restart never renews it; the first controller refused `busy`
gets the next slot (firmware/README.md, pairing).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from homeseal_protocol.envelope import FrameType
from homeseal_protocol.errors import PairingError, PairingFailure
from testbed.accounts import new_account
from testbed.endpoints import Controller
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess

from .proxy import DEVICE, DOWN, UP, Mitm
from .test_mitm import CODE

pytestmark = pytest.mark.micropython

ATTEMPT_S = 3  # main.py --attempt-seconds (30 s in the field)
STRANGER = b"\x5a" * 10


async def test_l1_injected_pair_start_loop_cannot_keep_the_owner_out(
    relay: RelayProcess, mitm: Mitm, tmp_path: Path
) -> None:
    dev = DeviceProcess(
        tmp_path / "device", mitm.ws_device, args=["--attempt-seconds", str(ATTEMPT_S)]
    )
    provision(dev.state, CODE)
    dev.start()
    _, token = await new_account(relay.base)
    owner = await Controller(relay.base, token).connect()
    start = bytes((FrameType.PAIR_START,)) + STRANGER + b"\x01\x01"
    stop = asyncio.Event()

    async def busy_loop() -> None:
        while not stop.is_set():
            await mitm.inject(DEVICE, dev.device_id, DOWN, start)
            await asyncio.sleep(0.05)

    try:
        await dev.wait_log_async("relay connected")
        loop = asyncio.create_task(busy_loop())
        await asyncio.sleep(0.5)  # the stranger holds the slot, and keeps restarting it
        first_busy = None
        refusals: list[PairingFailure] = []
        while True:
            started = time.monotonic()
            try:
                assert await owner.pair(dev.device_id, CODE) == dev.public_key
                break
            except PairingError as err:
                refusals.append(err.failure)
                first_busy = first_busy or started
                await asyncio.sleep(0.7)  # the owner's relay budget must last the wait
        stop.set()
        await loop
        assert set(refusals) == {PairingFailure.BUSY}, refusals
        assert first_busy is not None
        waited = started - first_busy
        print(f"\nowner refused busy for {waited:.2f} s under an injected PAIR_START loop")
        assert waited <= ATTEMPT_S + 1.5, waited
        # The device's answers to the stranger: its slot, then busy once the owner was next.
        answers = [f[11:13] for f in mitm.frames(DEVICE, UP) if f[1:11] == STRANGER]
        assert bytes((0x7F, 4)) in answers
        await dev.wait_log_async("claimed by controller")
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await owner.close()
        dev.stop()
