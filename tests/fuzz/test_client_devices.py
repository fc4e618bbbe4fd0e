"""Fuzz the controller's per-device session handling (client/devices.py DeviceLink):
random SESSION payloads, and tampered copies of genuine ones, arriving from the relay
while a handshake is running and while the session is ready.

Property: nothing raises out of `session_frame`, nothing the device did not encrypt
changes the entity values or the entity list, and a random payload never makes the
link ready.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import assume, given
from hypothesis import strategies as st

from homeseal_protocol import session
from homeseal_protocol.client.device_link import DeviceLink, LinkState
from homeseal_protocol.crypto.noise import CipherState, HandshakeState

from .profile import fuzz
from .strategies import mutations
from .test_client_parsers import (
    CONTROLLER_ID,
    CONTROLLER_KEY,
    CONTROLLER_PUB,
    DEVICE_ID,
    DEVICE_KEY,
    DEVICE_PUB,
    session_bytes,
)

DESCRIBE = json.dumps({
    "t": "describe", "fw": "1", "model": "m", "name": "n",
    "entities": [{"key": "relay1", "kind": "switch", "name": "Relay"}],
}).encode()  # fmt: skip
STATE = b'{"t":"state","s":{"relay1":false}}'


class Harness:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

        async def send(peer: bytes, payload: bytes) -> None:
            self.sent.append(payload)

        self.link = DeviceLink(
            DEVICE_ID, DEVICE_PUB,
            lambda: session.InitiatorSession(CONTROLLER_KEY, DEVICE_PUB, DEVICE_ID, CONTROLLER_ID),
            send, handshake_timeout=30, command_timeout=30,
        )  # fmt: skip

    async def ready(self) -> CipherState:
        """Complete a genuine handshake, describe and state; return the device's sender."""
        self.link.relay_up(immediate=True)
        await asyncio.sleep(0)
        hs1 = self.sent[-1]
        responder = HandshakeState(
            session.PROTOCOL_NAME, initiator=False,
            prologue=session.prologue(DEVICE_ID, CONTROLLER_ID), s=DEVICE_KEY, rs=CONTROLLER_PUB,
        )  # fmt: skip
        responder.read_message(hs1[1:])
        self.link.session_frame(b"\x02" + responder.write_message(b""))
        device_send, _ = responder.transport()
        for pt in (DESCRIBE, STATE):
            self.link.session_frame(b"\x03" + device_send.encrypt_with_ad(b"", pt))
        assert self.link.state is LinkState.READY
        return device_send


async def settle() -> None:
    """Let the link's spawned sends (RESET replies, HANDSHAKE1) run before it stops."""
    for _ in range(3):
        await asyncio.sleep(0)


def run(coro: object) -> None:
    # A private loop: the test runner's own loop is left alone.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coro)  # type: ignore[arg-type]
    finally:
        loop.close()


@fuzz(0.5)
@given(payloads=st.lists(session_bytes, min_size=1, max_size=4))
def test_random_payloads_while_handshaking(payloads: list[bytes]) -> None:
    async def scenario() -> None:
        h = Harness()
        h.link.relay_up(immediate=True)
        await asyncio.sleep(0)
        for p in payloads:
            h.link.session_frame(p)
        assert h.link.state is not LinkState.READY
        assert h.link.describe is None
        assert h.link.values == {}
        await settle()
        h.link.stop()
        await asyncio.sleep(0)

    run(scenario())


@fuzz(0.5)
@given(payloads=st.lists(session_bytes, min_size=1, max_size=4), data=st.data())
def test_random_and_tampered_payloads_when_ready(
    payloads: list[bytes], data: st.DataObject
) -> None:
    async def scenario() -> None:
        h = Harness()
        device_send = await h.ready()
        genuine = b"\x03" + device_send.encrypt_with_ad(b"", b'{"t":"state","s":{"relay1":true}}')
        tampered = data.draw(mutations(genuine))
        assume(tampered != genuine)
        describe, values = h.link.describe, dict(h.link.values)
        for p in [*payloads, tampered]:
            h.link.session_frame(p)
        assert h.link.describe == describe
        assert h.link.values == values  # relay1 stays false: the push was never genuine
        await settle()
        h.link.stop()
        await asyncio.sleep(0)

    run(scenario())
