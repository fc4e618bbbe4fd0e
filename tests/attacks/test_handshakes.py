"""HANDSHAKE1 from the link or a malicious relay, on the REAL firmware through the REAL
relay, with the device's HANDSHAKE1 budget at its real size.

- L2: a recorded HANDSHAKE1 replayed mid-session never costs the live session: the
  device answers it with a pending session and keeps serving the live one, which only
  the controller's first message under new keys would replace (PROTOCOL §6).
- L4: forged HANDSHAKE1 (48 random bytes under the pinned controller's id) cost at most
  the budget's static-key DHs (4 at once, then one per 5 s): beyond it they are dropped
  without a DH and without an answer; a genuine handshake works within one refill.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from homeseal_protocol.session import InitiatorSession
from testbed.relay import RelayProcess

from .proxy import CONTROLLER, DEVICE, DOWN, UP, Mitm
from .test_mitm import SESSION, Setup, kind, paired_behind

pytestmark = pytest.mark.micropython

HANDSHAKE1, HANDSHAKE2, RESET = 0x01, 0x02, 0x04
BURST, EVERY_S = 4, 5.0  # session.HANDSHAKE_BURST, HANDSHAKE_EVERY_MS


@pytest.fixture
async def real_budget(relay: RelayProcess, mitm: Mitm, tmp_path: Path) -> AsyncIterator[Setup]:
    """The device behind the attacker with its default HANDSHAKE1 budget, paired."""
    async with paired_behind(relay, mitm, tmp_path, []) as su:
        yield su


def down_session(su: Setup, payload: bytes) -> bytes:
    """A SESSION frame as the relay delivers it to the device: from the controller's id."""
    return bytes((SESSION,)) + su.ctl.id + payload


async def test_l2_replayed_handshake1_keeps_the_live_session(real_budget: Setup) -> None:
    su = real_budget
    s = await su.session()
    await su.switch(s, True)
    # The live session's HANDSHAKE1, recorded on the controller's link.
    recorded = [f[11:] for f in su.mitm.frames(CONTROLLER, UP) if kind(f) == HANDSHAKE1]
    assert len(recorded) == 1
    hs1 = recorded[-1]

    # Replay it to the device, as the relay or anyone on the link can, and keep the
    # device's HANDSHAKE2 from the controller (the attacker's choice; a controller would
    # ignore it anyway: it answers no handshake of its own).
    def drop_handshake2(lk: str, d: str, data: bytes) -> list[bytes]:
        return [] if lk == DEVICE and d == UP and kind(data) == HANDSHAKE2 else [data]

    su.mitm.hook = drop_handshake2
    for _ in range(3):
        answered = len([f for f in su.mitm.frames(DEVICE, UP) if kind(f) == HANDSHAKE2])
        await su.mitm.inject(DEVICE, su.dev.device_id, DOWN, down_session(su, hs1))
        for _ in range(100):
            if len([f for f in su.mitm.frames(DEVICE, UP) if kind(f) == HANDSHAKE2]) > answered:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the device did not answer the replayed HANDSHAKE1")
        # The live session goes on: commands, results, state pushes.
        await su.switch(s, False)
        await su.switch(s, True)
        await s.send_app({"t": "ping", "id": 9})
        assert await s.wait_for("pong", id=9) == {"t": "pong", "id": 9}
    su.mitm.hook = None
    assert "session closed" not in su.dev.output()
    assert s.noise.is_open
    assert su.dev.count_log("session open") == 1


async def test_l4_forged_handshake1_flood_costs_at_most_the_budget(real_budget: Setup) -> None:
    su = real_budget
    s = await su.session()  # one token of the 4: the live session's handshake
    await su.switch(s, True)
    su.ctl.drain()
    started = time.monotonic()
    n = 300
    for _ in range(n):
        forged = down_session(su, bytes((HANDSHAKE1,)) + os.urandom(48))
        await su.mitm.inject(DEVICE, su.dev.device_id, DOWN, forged)
    # What the device answered: each RESET handshake_failed is one admitted HANDSHAKE1,
    # one DH with its static key; a dropped one gets no answer at all.
    await su.dev.wait_log_async("HANDSHAKE1 budget spent")
    await asyncio.sleep(1.0)
    elapsed = time.monotonic() - started
    answers = await su.session_frames(0.5)
    resets = [a for a in answers if a == bytes((RESET, 2))]
    budget = BURST - 1 + int(elapsed / EVERY_S) + 1
    assert 1 <= len(resets) <= budget, (len(resets), budget, elapsed)
    assert len(answers) == len(resets), [a[:2].hex() for a in answers]
    print(f"\n{n} forged HANDSHAKE1 in {elapsed:.1f} s: {len(resets)} answered (budget {budget})")
    assert su.dev.count_log("handshake failed") == len(resets)
    # The live session was never touched.
    await su.switch(s, False)
    assert su.dev.alive

    # A genuine handshake after the flood: within one refill (5 s) of the flood's end,
    # retried as a controller does when HANDSHAKE1 gets no answer.
    t0 = time.monotonic()
    noise = InitiatorSession(su.ctl.key, su.device_pub, su.dev.device_id, su.ctl.id)
    hs1 = noise.start()
    reply = None
    while reply is None and time.monotonic() - t0 < EVERY_S + 5:
        await su.ctl.send(SESSION, su.dev.device_id, hs1)
        for frame in await su.session_frames(1.0, until=lambda p: p[:1] == bytes((HANDSHAKE2,))):
            if frame[:1] == bytes((HANDSHAKE2,)):
                reply = frame
    assert reply is not None, "no HANDSHAKE2 within a refill of the flood"
    waited = time.monotonic() - t0
    assert waited <= EVERY_S + 2.0, waited
    assert noise.receive(reply) is None
    # Confirm it with the first message: describe, state, then the pong.
    ping = json.dumps({"t": "ping", "id": 77}).encode()
    await su.ctl.send(SESSION, su.dev.device_id, noise.encrypt(ping))
    got = [json.loads(noise.receive((await su.ctl.recv((SESSION,), 10)).payload) or b"{}")
           for _ in range(3)]  # fmt: skip
    assert [m["t"] for m in got] == ["describe", "state", "pong"], got
    print(f"genuine handshake answered {waited:.1f} s after the flood")
