"""DeviceLink (sessions, application messages, commands) against a device built from the
real Noise code, with every misbehaviour a device or the relay could produce."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from homeseal_protocol.client import device_link
from homeseal_protocol.client.device_link import DeviceLink, LinkState
from homeseal_protocol.crypto.noise import CipherState, HandshakeState
from homeseal_protocol.envelope import RelayError
from homeseal_protocol.errors import (
    CommandRejected,
    CommandTimeout,
    DeviceOffline,
    NoiseError,
    NotRecognised,
)
from homeseal_protocol.ids import endpoint_id
from homeseal_protocol.keys import public_bytes
from homeseal_protocol.session import (
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
        {"key": "wall", "kind": "event", "name": "Wall", "event_types": ["single", "long"]},
    ],
}


class Device:
    """The responder side of Noise KK, as the firmware does it (§6): a new session is
    pending until the controller's first message on it, and the live one serves until
    then."""

    def __init__(self, controller: X25519PrivateKey) -> None:
        self.key = X25519PrivateKey.generate()
        self.pub = public_bytes(self.key)
        self.id = endpoint_id(self.pub)
        self.controller_pub = public_bytes(controller)
        self.controller_id = endpoint_id(self.controller_pub)
        self.send: CipherState | None = None
        self.recv: CipherState | None = None
        self.pending: tuple[CipherState, CipherState] | None = None

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
        self.pending = hs.transport()
        return b"\x02" + h2

    def transport(self, obj: object) -> bytes:
        assert self.send is not None
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        return b"\x03" + self.send.encrypt_with_ad(b"", data)

    def read(self, payload: bytes) -> dict[str, Any]:
        assert payload[0] == 0x03
        if self.pending is not None:
            send, recv = self.pending
            try:
                plaintext = recv.decrypt_with_ad(b"", payload[1:])
            except NoiseError:
                pass  # still the live session's
            else:
                self.send, self.recv, self.pending = send, recv, None
                return dict(json.loads(plaintext))
        assert self.recv is not None
        result: dict[str, Any] = json.loads(self.recv.decrypt_with_ad(b"", payload[1:]))
        return result


class Harness:
    def __init__(self) -> None:
        self.controller = X25519PrivateKey.generate()
        self.controller_id = endpoint_id(public_bytes(self.controller))
        self.device = Device(self.controller)
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.alarms: list[bytes] = []
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
            on_not_recognised=lambda link: self.alarms.append(link.not_recognised),
            on_describe=on_describe,
            command_timeout=0.5,
            handshake_timeout=0.3,
        )
        # Fast pacing; test_l3_handshakes_are_paced checks the real one.
        self.link.min_handshake_interval = 0.02
        self.link.retry_delay = lambda failures: 0.02 * failures

    async def sent(self) -> bytes:
        return await asyncio.wait_for(self.outbox.get(), 2)

    async def accept(self, handshake1: bytes) -> None:
        """The device answers HANDSHAKE1 and takes the controller's first message on the
        new session, which confirms it (§6.2)."""
        self.link.session_frame(self.device.answer(handshake1))
        assert self.link.state is LinkState.WAITING_DESCRIBE
        assert self.device.read(await self.sent())["t"] == "ping"

    async def open(self) -> None:
        """Relay up, handshake, describe + state: READY."""
        self.link.relay_up(immediate=True)
        await self.accept(await self.sent())
        self.link.session_frame(self.device.transport(DESCRIBE))
        self.link.session_frame(
            self.device.transport(
                {"t": "state", "s": {"relay1": False, "bell": None, "wall": None}}
            )
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
    assert h.link.values == {"relay1": False, "bell": None, "wall": None}
    assert LinkState.READY in changes

    # Command → result.
    task = asyncio.create_task(h.link.command("relay1", "turn_on"))
    command = h.device.read(await h.sent())
    assert command == {"t": "command", "id": command["id"], "key": "relay1", "action": "turn_on"}
    h.link.session_frame(h.device.transport({"t": "result", "id": command["id"], "ok": True}))
    await task
    # State for unknown keys is ignored, known keys are applied.
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": True, "zzz": 1}}))
    assert h.link.values == {"relay1": True, "bell": None, "wall": None}

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


async def test_events_reach_their_listeners(harness: Harness) -> None:
    """An event entity's events go to the event listeners, once each; an event for a key
    that is not an event entity is ignored, and events change no state value."""
    h = harness
    await h.open()
    events: list[tuple[str, str]] = []
    remove = h.link.add_event_listener(lambda key, kind: events.append((key, kind)))
    for obj in (
        {"t": "event", "key": "wall", "type": "single"},
        {"t": "event", "key": "relay1", "type": "single"},
        {"t": "event", "key": "nope", "type": "long"},
        {"t": "event", "key": "wall", "type": "long"},
    ):
        h.link.session_frame(h.device.transport(obj))
    assert events == [("wall", "single"), ("wall", "long")]
    assert h.link.values["wall"] is None
    assert h.link.available
    remove()
    h.link.session_frame(h.device.transport({"t": "event", "key": "wall", "type": "single"}))
    assert len(events) == 2


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
    await h.accept(h1)
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
    # limit_reached: handshake again.
    h.link.session_frame(encode_reset(ResetReason.LIMIT_REACHED))
    h1 = await h.sent()
    assert h1[0] == 0x01
    assert h.link.state is LinkState.HANDSHAKING
    # not_paired: the device says it forgot us.
    h.link.session_frame(encode_reset(ResetReason.NOT_PAIRED))
    assert h.link.state is LinkState.NOT_PAIRED
    # Malformed RESETs with no session are ignored (a RESET is reason only, §6).
    for bad in (b"\x04", b"\x04\x01\x02", encode_reset(2) + bytes(32)):
        h.link.session_frame(bad)
        assert h.link.state is LinkState.NOT_PAIRED
    h.link.session_frame(encode_reset(ResetReason.HANDSHAKE_FAILED))
    assert h.link.state is LinkState.NOT_PAIRED
    # Sessions are still offered to the pinned key, and only it can answer them.
    handshake1 = await h.sent()
    assert handshake1[0] == 0x01
    await h.accept(handshake1)
    h.link.session_frame(h.device.transport(DESCRIBE))
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": False}}))
    assert h.link.state is LinkState.READY
    assert h.link.device_static_pub == h.device.pub


async def test_l3_a_forged_reset_raises_no_alarm(harness: Harness) -> None:
    """RESET is unauthenticated: one (or a burst) claiming the device does not know us
    changes no pin and raises no alarm; the pinned device's next session clears it."""
    h = harness
    await h.open()
    h.link.presence(True)
    await h.sent()
    for _ in range(5):
        h.link.session_frame(encode_reset(ResetReason.HANDSHAKE_FAILED))
    assert h.alarms == []
    assert not h.link.not_recognised
    assert h.link.refused_since is not None
    assert h.link.device_static_pub == h.device.pub


async def test_l3_sustained_refusal_is_reported_and_cleared(harness: Harness) -> None:
    """Refused for longer than `not_recognised_after` while online: reported once; a
    command then says so; a session with the pinned key clears it."""
    h = harness
    await h.open()
    h.link.not_recognised_after = 0.2
    h.link.presence(True)
    deadline = asyncio.get_running_loop().time() + 2
    while not h.link.not_recognised:
        assert asyncio.get_running_loop().time() < deadline, "never reported"
        h1 = await h.sent()
        if h1[0] == 0x01:
            h.link.session_frame(encode_reset(ResetReason.NOT_PAIRED))
    assert h.alarms == [True]
    with pytest.raises(NotRecognised):
        await h.link.command("relay1", "turn_on")
    handshake1 = await h.sent()
    while handshake1[0] != 0x01:
        handshake1 = await h.sent()
    h.link.session_frame(h.device.answer(handshake1))
    assert h.alarms == [True, False]
    assert not h.link.not_recognised
    assert h.link.refused_since is None


async def test_l3_refusal_while_offline_is_not_reported(harness: Harness) -> None:
    h = harness
    await h.open()
    h.link.not_recognised_after = 0.0
    h.link.relay_error(RelayError.PEER_OFFLINE)  # no online hint any more
    h.link.session_frame(encode_reset(ResetReason.NOT_PAIRED))
    assert not h.link.not_recognised
    assert h.alarms == []


async def test_l3_handshakes_are_paced() -> None:
    """A flood of forged RESETs with PRESENCE hints starts at most one handshake per
    MIN_HANDSHAKE_INTERVAL (the real pacing); RESETs alone back off further below."""
    h = Harness()
    h.link.min_handshake_interval = device_link.MIN_HANDSHAKE_INTERVAL
    h.link.retry_delay = device_link.handshake_retry_delay
    try:
        await h.open()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 2.5:
            h.link.session_frame(encode_reset(ResetReason.NO_SESSION))
            h.link.presence(True)
            await asyncio.sleep(0.01)
        sent = []
        while not h.outbox.empty():
            sent.append(h.outbox.get_nowait())
        handshakes = [p for p in sent if p[0] == 0x01]
        # 250 hints in 2.5 s: a handshake at once, then at most one a second.
        assert 1 <= len(handshakes) <= 3, len(handshakes)
        # RESETs alone (anyone on the path can send them): the backoff after failures
        # (2 s, then 4 s) holds back the next handshakes.
        await asyncio.sleep(1.1)
        while not h.outbox.empty():
            h.outbox.get_nowait()
        started = loop.time()
        while loop.time() - started < 5:
            h.link.session_frame(encode_reset(ResetReason.NO_SESSION))
            await asyncio.sleep(0.01)
        handshakes = []
        while not h.outbox.empty():
            if (payload := h.outbox.get_nowait())[0] == 0x01:
                handshakes.append(payload)
        assert 1 <= len(handshakes) <= 2, len(handshakes)
    finally:
        h.link.stop()


async def test_l3_an_offline_device_is_probed_with_backoff(harness: Harness) -> None:
    """PRESENCE offline is a hint: the link keeps probing, ever more slowly, so that a
    device that left this account (which the relay reports as offline) is noticed."""
    h = harness
    await h.open()
    h.link.retry_delay = lambda failures: 0.05 * 2**failures
    h.link.presence(False)
    assert h.link.state is LinkState.OFFLINE
    starts = []
    loop = asyncio.get_running_loop()
    for _ in range(3):
        assert (await h.sent())[0] == 0x01
        starts.append(loop.time())
        h.link.relay_error(RelayError.PEER_OFFLINE)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[1] > gaps[0] * 1.5  # backing off
    assert not h.link.not_recognised


async def test_l3_a_device_that_left_the_account_is_reported(harness: Harness) -> None:
    """The relay answers not_permitted only for a connected device this account may not
    reach (§3.1): the device released itself (factory reset) or was claimed elsewhere.
    That is a refusal while online; sustained, it is reported."""
    h = harness
    await h.open()
    h.link.not_recognised_after = 0.2
    h.link.presence(False)  # what RELEASE tells the former owner
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not h.link.not_recognised:
        assert loop.time() < deadline, "never reported"
        if (await h.sent())[0] == 0x01:
            h.link.relay_error(RelayError.NOT_PERMITTED)
    assert h.alarms == [True]
    assert h.link.state is LinkState.NOT_PAIRED
    assert h.link.device_static_pub == h.device.pub


async def test_handshake_timeout_retries(harness: Harness) -> None:
    h = harness
    h.link.retry_delay = lambda failures: 5.0
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


async def test_l2_a_replayed_handshake1_costs_no_session(harness: Harness) -> None:
    """The device answers a replayed HANDSHAKE1 but keeps the live session until the
    initiator confirms the new one (§6.2); its answer reaches us while our session is
    open, and is ignored: commands go on."""
    h = harness
    h.link.relay_up(immediate=True)
    recorded = await h.sent()
    await h.accept(recorded)
    h.link.session_frame(h.device.transport(DESCRIBE))
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": False}}))
    assert h.link.available

    h.link.session_frame(h.device.answer(recorded))  # the replay, answered
    assert h.link.state is LinkState.READY
    task = asyncio.create_task(h.link.command("relay1", "turn_on"))
    command = h.device.read(await h.sent())  # on the live session
    assert command["action"] == "turn_on"
    h.link.session_frame(h.device.transport({"t": "result", "id": command["id"], "ok": True}))
    await task
    assert h.link.handshakes == 1


async def test_l2_a_new_session_reads_the_old_ones_last_messages(harness: Harness) -> None:
    """Until our first message on the new session reaches the device, it still speaks on
    the old one: those messages count, and do not end the new session."""
    h = harness
    await h.open()
    h.link.start_handshake()  # a rekey
    h1 = await h.sent()
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": True}}))
    assert h.link.values["relay1"] is True
    h.link.session_frame(h.device.answer(h1))
    assert h.link.state is LinkState.WAITING_DESCRIBE
    # In flight while our confirmation travels: still the old session.
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": False}}))
    assert h.link.values["relay1"] is False
    assert h.link.state is LinkState.WAITING_DESCRIBE
    assert h.device.read(await h.sent())["t"] == "ping"  # the device switches
    h.link.session_frame(h.device.transport(DESCRIBE))
    h.link.session_frame(h.device.transport({"t": "state", "s": {"relay1": True}}))
    assert h.link.state is LinkState.READY
    # Once the device spoke on the new session, the old one reads nothing any more.
    assert h.link._previous is None
