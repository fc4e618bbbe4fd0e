"""DeviceLink (sessions, application messages, commands) against a device built from the
real Noise code, with every misbehaviour a device or the relay could produce."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from custom_components.homeseal.client.devices import (
    CommandRejected,
    CommandTimeout,
    DeviceLink,
    DeviceOffline,
    KeyMismatch,
    LinkState,
)
from custom_components.homeseal.client.envelope import RelayError
from custom_components.homeseal.client.ids import endpoint_id
from custom_components.homeseal.client.noise import CipherState, HandshakeState
from custom_components.homeseal.client.relay_auth import public_bytes
from custom_components.homeseal.client.session import (
    PROTOCOL_NAME,
    InitiatorSession,
    ResetReason,
    encode_reset,
    prologue,
)

DESCRIBE = {
    "t": "describe",
    "fw": "1.0",
    "model": "m",
    "name": "Dev",
    "entities": [
        {"key": "relay1", "kind": "switch", "name": "Relay"},
        {"key": "bell", "kind": "button", "name": "Bell"},
    ],
}


class Device:
    """The responder side of Noise KK, as the firmware does it (§6)."""

    def __init__(self, controller: X25519PrivateKey) -> None:
        self.key = X25519PrivateKey.generate()
        self.pub = public_bytes(self.key)
        self.id = endpoint_id(self.pub)
        self.controller_pub = public_bytes(controller)
        self.controller_id = endpoint_id(self.controller_pub)
        self.send: CipherState | None = None
        self.recv: CipherState | None = None

    def answer(self, handshake1: bytes) -> bytes:
        assert handshake1[0] == 0x01
        hs = HandshakeState(
            PROTOCOL_NAME,
            False,
            prologue(self.id, self.controller_id),
            s=self.key,
            rs=self.controller_pub,
        )
        hs.read_message(handshake1[1:])
        h2 = hs.write_message(b"")
        self.send, self.recv = hs.split()
        return b"\x02" + h2

    def transport(self, obj: object) -> bytes:
        assert self.send is not None
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        return b"\x03" + self.send.encrypt_with_ad(b"", data)

    def read(self, payload: bytes) -> dict[str, Any]:
        assert payload[0] == 0x03
        assert self.recv is not None
        result: dict[str, Any] = json.loads(self.recv.decrypt_with_ad(b"", payload[1:]))
        return result


class Harness:
    def __init__(self) -> None:
        self.controller = X25519PrivateKey.generate()
        self.controller_id = endpoint_id(public_bytes(self.controller))
        self.device = Device(self.controller)
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.mismatch: list[bytes] = []
        self.described = 0

        async def send(peer: bytes, payload: bytes) -> None:
            assert peer == self.device.id
            await self.outbox.put(payload)

        def new_session() -> InitiatorSession:
            return InitiatorSession(
                self.controller, self.device.pub, self.device.id, self.controller_id
            )

        def on_describe(link: DeviceLink) -> None:
            self.described += 1

        self.link = DeviceLink(
            self.device.id,
            self.device.pub,
            new_session,
            send,
            on_key_mismatch=lambda link, key: self.mismatch.append(key),
            on_describe=on_describe,
            command_timeout=0.5,
            handshake_timeout=0.3,
        )

    async def sent(self) -> bytes:
        return await asyncio.wait_for(self.outbox.get(), 2)

    async def open(self) -> None:
        """Relay up, handshake, describe + state: READY."""
        self.link.relay_up(immediate=True)
        self.link.session_frame(self.device.answer(await self.sent()))
        assert self.link.state is LinkState.WAITING_DESCRIBE
        self.link.session_frame(self.device.transport(DESCRIBE))
        self.link.session_frame(
            self.device.transport({"t": "state", "s": {"relay1": False, "bell": None}})
        )
        assert self.link.state is LinkState.READY


@pytest.fixture
async def harness() -> Any:
    h = Harness()
    yield h
    h.link.stop()
    await asyncio.sleep(0)


async def test_session_commands_and_ping(harness: Harness) -> None:
    h = harness
    changes: list[LinkState] = []
    remove = h.link.add_listener(lambda: changes.append(h.link.state))
    await h.open()
    assert h.described == 1
    assert h.link.available
    assert h.link.values == {"relay1": False, "bell": None}
    assert LinkState.READY in changes

    # Command → result.
    task = asyncio.create_task(h.link.command("relay1", "turn_on"))
    command = h.device.read(await h.sent())
    assert command == {"t": "command", "id": command["id"], "key": "relay1", "action": "turn_on"}
    h.link.session_frame(h.device.transport({"t": "result", "id": command["id"], "ok": True}))
    await task
    # State for unknown keys is ignored, known keys are applied.
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": True, "zzz": 1}}))
    assert h.link.values == {"relay1": True, "bell": None}

    # Rejected.
    task = asyncio.create_task(h.link.command("bell", "turn_on"))
    command = h.device.read(await h.sent())
    h.link.session_frame(
        h.device.transport(
            {"t": "result", "id": command["id"], "ok": False, "error": "unsupported_action"}
        )
    )
    with pytest.raises(CommandRejected) as err:
        await task
    assert err.value.error == "unsupported_action"

    # No answer.
    with pytest.raises(CommandTimeout):
        await h.link.command("relay1", "turn_off")
    h.device.read(await h.sent())

    # A result nobody waits for is ignored; the device's ping is answered.
    h.link.session_frame(h.device.transport({"t": "result", "id": 77, "ok": True}))
    h.link.session_frame(h.device.transport({"t": "ping", "id": 12}))
    assert h.device.read(await h.sent()) == {"t": "pong", "id": 12}
    h.link.session_frame(h.device.transport({"t": "pong", "id": 1}))
    assert h.link.available
    remove()

    # Unpair: the device confirms, the link stops using the session.
    task = asyncio.create_task(h.link.unpair())
    unpair = h.device.read(await h.sent())
    assert unpair["t"] == "unpair"
    h.link.session_frame(h.device.transport({"t": "result", "id": unpair["id"], "ok": True}))
    await task
    assert h.link.state is LinkState.NOT_PAIRED


async def test_tampered_transport_ends_session(harness: Harness) -> None:
    h = harness
    await h.open()
    frame = bytearray(h.device.transport({"t": "state", "s": {"relay1": True}}))
    frame[5] ^= 1
    pending = asyncio.create_task(h.link.command("relay1", "turn_on"))
    h.device.read(await h.sent())
    h.link.session_frame(bytes(frame))
    # The session is gone, the device is told, the waiting command fails at once.
    assert await h.sent() == encode_reset(ResetReason.DECRYPT_FAILED)
    assert h.link.state is LinkState.OFFLINE
    with pytest.raises(DeviceOffline):
        await pending
    assert h.link.values["relay1"] is False
    # A new handshake follows (after a short backoff).
    h.link._failures = -10  # make the backoff tiny for the test
    h.link._retry_later()
    assert (await h.sent())[0] == 0x01


async def test_invalid_application_message(harness: Harness) -> None:
    h = harness
    await h.open()
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": "yes"}}))
    assert await h.sent() == encode_reset(ResetReason.PROTOCOL_ERROR)
    assert h.link.state is LinkState.OFFLINE
    with pytest.raises(DeviceOffline):
        await h.link.command("relay1", "turn_on")


async def test_stale_and_unexpected_frames(harness: Harness) -> None:
    h = harness
    await h.open()
    old = h.device.transport({"t": "state", "s": {"relay1": True}})
    # A new handshake replaces the session; leftovers of the old one are ignored meanwhile.
    h.link.presence(False)
    assert h.link.state is LinkState.OFFLINE
    h.link.presence(True)
    h1 = await h.sent()
    h.link.presence(True)  # one handshake at a time
    assert h.outbox.empty()
    h.link.session_frame(old)
    assert h.link.state is LinkState.HANDSHAKING
    h.link.session_frame(h.device.answer(h1))
    h.link.session_frame(h.device.transport(DESCRIBE))
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": True}}))
    assert h.link.available

    # TRANSPORT with no session at all: RESET no_session, then a handshake.
    h.link.relay_error(RelayError.PEER_OFFLINE)
    assert h.link.state is LinkState.OFFLINE
    h.link._cancel_timer()
    h.link.session_frame(h.device.transport({"t": "ping", "id": 1}))
    assert await h.sent() == encode_reset(ResetReason.NO_SESSION)
    assert (await h.sent())[0] == 0x01
    # Garbage and a HANDSHAKE2 that does not authenticate end the attempt.
    h.link.session_frame(b"\x02" + bytes(48))
    assert h.link.state is LinkState.OFFLINE


async def test_resets_from_the_device(harness: Harness) -> None:
    h = harness
    await h.open()
    # limit_reached: handshake again at once.
    h.link.session_frame(encode_reset(ResetReason.LIMIT_REACHED))
    h1 = await h.sent()
    assert h1[0] == 0x01
    assert h.link.state is LinkState.HANDSHAKING
    # not_paired: the device forgot us.
    h.link.session_frame(encode_reset(ResetReason.NOT_PAIRED))
    assert h.link.state is LinkState.NOT_PAIRED
    # Malformed RESETs with no session are ignored; a bare RESET without session is handled.
    h.link.session_frame(b"\x04")
    h.link.session_frame(b"\x04\x01\x02")
    assert h.link.state is LinkState.NOT_PAIRED
    # handshake_failed carrying the pinned key: the device does not know us.
    h.link.session_frame(encode_reset(ResetReason.HANDSHAKE_FAILED, h.device.pub))
    assert h.link.state is LinkState.NOT_PAIRED
    assert h.mismatch == []
    # ... carrying another key: refused and reported, never pinned.
    other = public_bytes(X25519PrivateKey.generate())
    h.link.session_frame(encode_reset(ResetReason.HANDSHAKE_FAILED, other))
    assert h.link.state is LinkState.KEY_MISMATCH
    assert h.mismatch == [other]
    assert h.link.presented_key == other
    assert h.link.device_static_pub == h.device.pub
    with pytest.raises(KeyMismatch):
        await h.link.command("relay1", "turn_on")
    # A RESET is unauthenticated (a relay can forge one), so sessions are still offered
    # to the pinned key, and only the pinned key can answer them.
    h.link.presence(True)
    handshake1 = await h.sent()
    assert handshake1[0] == 0x01
    assert h.link.presented_key == other
    h.link.session_frame(h.device.answer(handshake1))
    h.link.session_frame(h.device.transport(DESCRIBE))
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": False}}))
    assert h.link.state is LinkState.READY
    assert h.link.presented_key is None
    assert h.link.device_static_pub == h.device.pub


async def test_handshake_timeout_retries(harness: Harness) -> None:
    h = harness
    h.link.relay_up(immediate=True)
    assert (await h.sent())[0] == 0x01
    await asyncio.sleep(0.4)  # handshake_timeout is 0.3 s
    assert h.link.state is LinkState.OFFLINE
    assert h.link._handshake_timer is not None  # a retry is scheduled
    h.link.relay_down()
    assert h.link._handshake_timer is None


async def test_relay_up_waits_briefly_for_presence(harness: Harness) -> None:
    h = harness
    h.link.relay_up()
    assert h.outbox.empty()  # PRESENCE normally comes right after AUTH_OK
    h.link._handshake_timer.cancel()
    h.link._handshake_if_idle()  # ... and if it does not, try anyway
    assert (await h.sent())[0] == 0x01
