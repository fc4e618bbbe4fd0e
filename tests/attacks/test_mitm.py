"""An active attacker between the REAL firmware and the REAL relay (plain ws://), and a
malicious relay (the same proxy between the controller and the relay).

Each attack is applied to live traffic of an open session: flip a bit, truncate,
replay an earlier frame, replay a whole earlier session, reorder, inject random frames,
drop the handshake's last message. Each must be detected: nothing reaches the
simulated pins, no state reaches the controller, and a fresh session works afterwards.
A capture of everything that crossed never holds a plaintext marker, the setup code or
a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from homeseal_protocol.envelope import FrameType
from homeseal_protocol.errors import SessionError
from homeseal_protocol.session import InitiatorSession
from testbed.accounts import new_account
from testbed.endpoints import Controller, SessionClient
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess
from tests.firmware.statefiles import read_record

from .proxy import CONTROLLER, DEVICE, DOWN, UP, Hook, Mitm

pytestmark = pytest.mark.micropython

CODE = "40961357"
RELAY_PIN = "5"  # the switch "relay1" of the harness config
DOOR_PIN = 4
SESSION = FrameType.SESSION
TRANSPORT, RESET = 0x03, 0x04


def kind(frame: bytes) -> int:
    return frame[11] if len(frame) > 11 and frame[0] == SESSION else -1


class Setup:
    def __init__(self, mitm: Mitm, dev: DeviceProcess, ctl: Controller, device_pub: bytes) -> None:
        self.mitm, self.dev, self.ctl, self.device_pub = mitm, dev, ctl, device_pub
        self.next_id = 1000

    async def session(self) -> SessionClient:
        self.mitm.hook = None
        self.mitm.only = None
        self.ctl.drain()
        s = await self.ctl.open_session(self.dev.device_id, self.device_pub)
        # Command ids stay unique across sessions: the device answers a repeated id from
        # its result cache without acting (PROTOCOL §7).
        self.next_id += 100
        s.next_id = self.next_id
        return s

    async def pin(self) -> int:
        return int((await self.dev.pins())[RELAY_PIN])

    async def session_frames(
        self, within: float, until: Callable[[bytes], bool] = lambda p: False
    ) -> list[bytes]:
        """SESSION payloads that reach the controller within `within` seconds (or up to
        the first one matching `until`)."""
        out: list[bytes] = []
        try:
            while True:
                _, _, payload = await self.ctl.recv((SESSION,), within)
                out.append(payload)
                if until(payload):
                    return out
        except AssertionError:
            return out

    async def recover(self) -> None:
        """Both sides start over with a fresh handshake; a command works end to end."""
        s = await self.session()
        await self.switch(s, True)
        await self.switch(s, False)

    async def switch_other(self, s: SessionClient, dev: DeviceProcess, on: bool) -> None:
        n = len(s.messages)
        assert (await s.command("relay1", "turn_on" if on else "turn_off"))["ok"] is True
        while not any(m["t"] == "state" and m["s"].get("relay1") is on for m in s.messages[n:]):
            await s.recv_app(5)
        assert int((await dev.pins())[RELAY_PIN]) == int(on)

    async def switch(self, s: SessionClient, on: bool) -> None:
        """Command relay1 and consume the state push it causes (so no frame of this
        session is left in flight when the next one starts)."""
        n = len(s.messages)
        assert (await s.command("relay1", "turn_on" if on else "turn_off"))["ok"] is True
        while not any(m["t"] == "state" and m["s"].get("relay1") is on for m in s.messages[n:]):
            await s.recv_app(5)
        assert await self.pin() == int(on)


@pytest.fixture
async def setup(relay: RelayProcess, mitm: Mitm, tmp_path: Path) -> AsyncIterator[Setup]:
    """A device behind the attacker, paired with a controller that is behind it too.

    Each attack here breaks a session and opens a fresh one, many within seconds: the
    device's HANDSHAKE1 budget (4, then one per 5 s) is raised so that these tests are
    about detection; tests/attacks/test_handshakes.py runs it at its real size."""
    async with paired_behind(relay, mitm, tmp_path, ["--handshake-burst", "1000"]) as su:
        yield su


@contextlib.asynccontextmanager
async def paired_behind(
    relay: RelayProcess, mitm: Mitm, tmp_path: Path, args: list[str]
) -> AsyncIterator[Setup]:
    """A device (started with `args`) and a controller, both behind the attacker, paired."""
    dev = DeviceProcess(tmp_path / "device", mitm.ws_device, args=args)
    provision(dev.state, CODE)
    dev.start()
    _, token = await new_account(relay.base)
    ctl = await Controller(mitm.http_base, token).connect()
    try:
        await dev.wait_log_async("relay connected")
        device_pub = await ctl.pair(dev.device_id, CODE)
        await dev.wait_log_async("claimed by controller")
        yield Setup(mitm, dev, ctl, device_pub)
    finally:
        await ctl.close()
        dev.stop()


def once(link: str, direction: str, pick: Callable[[bytes], bool],
         replace: Callable[[bytes], list[bytes]]) -> Hook:  # fmt: skip
    """A hook that rewrites the first frame matching (link, direction, pick)."""
    done = False

    def hook(lk: str, d: str, data: bytes) -> list[bytes]:
        nonlocal done
        if not done and lk == link and d == direction and pick(data):
            done = True
            return replace(data)
        return [data]

    return hook


def flip(data: bytes) -> list[bytes]:
    i = 12 + (len(data) - 12) // 2  # inside the ciphertext
    return [data[:i] + bytes((data[i] ^ 0x01,)) + data[i + 1 :]]


def truncate(data: bytes) -> list[bytes]:
    return [data[:-1]]


def random_body(data: bytes) -> list[bytes]:
    return [data[:12] + os.urandom(len(data) - 12)]


# Attacks on a command on its way to the device: (name, link, direction, rewrite).
# Through the proxy on the device's link (MITM) and on the controller's (malicious relay).
COMMAND_ATTACKS = [
    ("mitm-flip", DEVICE, DOWN, flip),
    ("mitm-truncate", DEVICE, DOWN, truncate),
    ("mitm-inject-random", DEVICE, DOWN, lambda d: [random_body(d)[0], d]),
    ("relay-flip", CONTROLLER, UP, flip),
    ("relay-truncate", CONTROLLER, UP, truncate),
    ("relay-replace-random", CONTROLLER, UP, random_body),
]


async def expect_detected_by_device(su: Setup, before: int) -> None:
    frames = await su.session_frames(5.0, until=lambda p: p[:1] == bytes((RESET,)))
    resets = [f for f in frames if f and f[0] == RESET]
    assert resets, f"the device did not reset the session (saw {[f[:2].hex() for f in frames]})"
    assert resets[0][1] in (5, 6), resets[0].hex()  # protocol_error / decrypt_failed
    await su.dev.wait_log_async("session closed: decrypt failed|session closed: protocol error")
    assert await su.pin() == before, "a tampered command reached the pins"


async def test_tampered_commands_are_rejected(setup: Setup) -> None:
    su = setup
    for name, link, direction, rewrite in COMMAND_ATTACKS:
        s = await su.session()
        assert await su.pin() == 0
        su.mitm.hook = once(link, direction, lambda f: kind(f) == TRANSPORT, rewrite)
        await s.send_app({"t": "command", "id": 100, "key": "relay1", "action": "turn_on"})
        try:
            await expect_detected_by_device(su, 0)
        except AssertionError as err:
            raise AssertionError(f"attack {name}: {err}") from None
        await su.recover()


async def test_replay_reorder_and_whole_session_replay(setup: Setup) -> None:
    su = setup
    # Replay of an earlier command frame, after the state it caused was undone.
    s = await su.session()
    await su.switch(s, True)
    await su.switch(s, False)
    turn_on = [f for f in su.mitm.frames(DEVICE, DOWN) if kind(f) == TRANSPORT][-2]
    su.ctl.drain()
    await inject(su, turn_on)
    await expect_detected_by_device(su, 0)
    await su.recover()

    # Reorder: hold the first of two commands and let the second overtake it.
    s = await su.session()
    held: list[bytes] = []

    def reorder(lk: str, d: str, data: bytes) -> list[bytes]:
        if lk == DEVICE and d == DOWN and kind(data) == TRANSPORT:
            if not held:
                held.append(data)
                return []
            return [data, held[0]]
        return [data]

    su.mitm.hook = reorder
    await s.send_app({"t": "command", "id": 200, "key": "relay1", "action": "turn_on"})
    await s.send_app({"t": "command", "id": 201, "key": "lamp", "action": "turn_on"})
    await expect_detected_by_device(su, 0)
    assert int((await su.dev.pins())["6"]) == 0, "a reordered command reached the lamp"
    await su.recover()

    # Replay of a whole earlier session (its HANDSHAKE1 and its commands) into the link.
    old = [f for f in su.mitm.frames(DEVICE, DOWN) if kind(f) in (0x01, TRANSPORT)]
    last_hs1 = max(i for i, f in enumerate(old) if kind(f) == 0x01)
    recorded = old[last_hs1:]  # the recovery session: HANDSHAKE1, turn_on, turn_off
    assert len(recorded) >= 3
    s = await su.session()
    su.ctl.drain()
    for frame in recorded[:2]:  # HANDSHAKE1 and turn_on
        await inject(su, frame)
    frames = await su.session_frames(5.0, until=lambda p: p[:2] == bytes((RESET, 6)))
    # The device answers the replayed HANDSHAKE1 with fresh ephemerals, so the
    # recorded command is under keys nobody holds any more: it is refused.
    assert any(f[0] == RESET and f[1] == 6 for f in frames), [f[:2].hex() for f in frames]
    assert await su.pin() == 0, "a replayed session switched the relay on"
    # The controller's live session ignores the unsolicited HANDSHAKE2 (§6: not its
    # handshake); the recorded command then ended the device's sessions (decrypt_failed).
    hs2 = [f for f in frames if f[0] == 0x02]
    if hs2:
        assert s.noise.receive(hs2[0]) is None
    await su.recover()


async def inject(su: Setup, frame: bytes) -> None:
    """Send a frame to device A as if the relay had sent it (the attacker's own frame)."""
    await su.mitm.inject(DEVICE, su.dev.device_id, DOWN, frame)


async def test_tampered_state_is_not_accepted(setup: Setup) -> None:
    """Device → controller: a bit flip on a state push ends the controller's session."""
    su = setup
    for name, link, direction in [("mitm", DEVICE, UP), ("relay", CONTROLLER, DOWN)]:
        s = await su.session()
        door_before = s.state["door"]
        su.mitm.hook = once(link, direction, lambda f: kind(f) == TRANSPORT, flip)
        await su.dev.set_pin(DOOR_PIN, 0 if door_before else 1)
        _, _, payload = await su.ctl.recv((SESSION,), 10)
        with pytest.raises(SessionError):
            s.noise.receive(payload)
        assert s.noise.closed, f"{name}: the session survived a tampered frame"
        assert s.state["door"] == door_before
        await su.dev.set_pin(DOOR_PIN, 1)
        await su.ctl.recv((SESSION,), 10)  # that push, under the session the device still holds
        await su.recover()


async def test_dropped_handshake2_never_opens_a_session(setup: Setup) -> None:
    su = setup
    su.ctl.drain()
    noise = InitiatorSession(su.ctl.key, su.device_pub, su.dev.device_id, su.ctl.id)
    su.mitm.hook = once(DEVICE, UP, lambda f: kind(f) == 0x02, lambda f: [])
    await su.ctl.send(SESSION, su.dev.device_id, noise.start())
    # Without HANDSHAKE2 the controller never sends the first message that would
    # confirm the session: the device sends nothing in it (§6) and opens nothing.
    frames = await su.session_frames(2.0)
    assert frames == [], [f[:2].hex() for f in frames]
    assert "session open" not in su.dev.output()
    assert not noise.is_open
    await su.recover()


async def test_capture_holds_no_secret(setup: Setup) -> None:
    su = setup
    s = await su.session()
    await su.switch(s, True)
    await su.switch(s, False)
    await su.dev.set_pin(DOOR_PIN, 0)
    await s.wait_for("state", s={"door": False})
    await su.dev.set_pin(DOOR_PIN, 1)
    traffic = b"".join(c.data for c in su.mitm.capture)
    assert len(traffic) > 2000
    identity = su.dev.identity
    prov = json.loads((su.dev.state / "provisioning.json").read_text())
    secrets = {
        "application marker relay1": b"relay1",
        "application marker turn_on": b"turn_on",
        "application marker describe": b"describe",
        "application marker Temperature": b"Temperature",
        "setup code": CODE.encode(),
        "setup code as printed": b"4096-1357",
        "device private key": bytes.fromhex(identity["private_key"]),
        "controller private key": su.ctl.key.private_bytes_raw(),
        "w0": bytes.fromhex(prov["w0"]),
    }
    for what, value in secrets.items():
        assert value not in traffic, f"{what} crossed the relay"
        assert value.hex().encode() not in traffic, f"{what} (hex) crossed the relay"


async def test_spliced_frames_from_another_device(setup: Setup, tmp_path: Path) -> None:
    """Frames of device B's session, spliced into device A's: refused on both sides."""
    su = setup
    a_id = su.dev.device_id
    dev_b = DeviceProcess(tmp_path / "device-b", su.mitm.ws_device)
    provision(dev_b.state, "27182845")
    dev_b.start()
    try:
        await dev_b.wait_log_async("relay connected")
        b_pub = await su.ctl.pair(dev_b.device_id, "27182845")
        await dev_b.wait_log_async("claimed by controller")
        s_a = await su.session()
        s_b = await su.ctl.open_session(dev_b.device_id, b_pub)
        s_b.next_id = 50_000

        # MITM on A's link: B's command, replayed into A's stream.
        await su.switch_other(s_b, dev_b, True)
        for_b = [f for f in su.mitm.frames(DEVICE, DOWN, dev_b.device_id) if kind(f) == TRANSPORT]
        su.ctl.drain()
        su.mitm.only = a_id
        await inject(su, for_b[-1])
        await expect_detected_by_device(su, 0)
        assert await su.pin() == 0, "B's command switched A's relay"

        # Malicious relay: B's state push presented to the controller as A's.
        s_a = await su.session()
        su.mitm.only = None
        su.mitm.hook = once(
            CONTROLLER, DOWN,
            lambda f: f[1:11] == dev_b.device_id and kind(f) == TRANSPORT,
            lambda f: [f[:1] + a_id + f[11:]],
        )  # fmt: skip
        await dev_b.set_pin(DOOR_PIN, 0)
        _, peer, payload = await su.ctl.recv((SESSION,), 10)
        assert peer == a_id
        state_before = dict(s_a.state)
        with pytest.raises(SessionError):
            s_a.noise.receive(payload)
        assert s_a.state == state_before
        await su.recover()
    finally:
        dev_b.stop()


async def test_random_frames_into_the_device_link(setup: Setup) -> None:
    """An attacker on the device's link injects frames of every type with random payloads:
    the firmware neither crashes nor acts on them, and serves a fresh session after."""
    su = setup
    rng = random.Random(20261125)
    ctl_id = su.ctl.id
    frames: list[bytes] = []
    for ftype in (0x10, 0x11, 0x20, 0x31, 0x33, 0x41, 0x40, 0x03):
        for size in (0, 1, 2, 33, 49, 81, 200):
            peer = rng.choice([ctl_id, bytes(10), os.urandom(10)])
            body = os.urandom(size)
            if ftype == 0x20 and size:
                body = bytes((rng.choice([1, 2, 3, 4, 5, 0xFF]),)) + body[1:]
            frames.append(bytes((ftype,)) + peer + body)
    s = await su.session()
    pinned = read_record(su.dev.state, "pairing.json")
    su.mitm.only = su.dev.device_id
    injected = iter(frames)

    def hook(lk: str, d: str, data: bytes) -> list[bytes]:
        if lk == DEVICE and d == DOWN:
            return [data, *(f for _, f in zip(range(8), injected, strict=False))]
        return [data]

    su.mitm.hook = hook
    for _ in range(len(frames) // 8 + 1):
        await su.ctl.send(SESSION, su.dev.device_id, bytes((RESET, 1)))
        await asyncio.sleep(0.05)
    su.mitm.hook = None
    await asyncio.sleep(0.5)
    assert su.dev.alive
    assert "Traceback" not in su.dev.output()
    assert await su.pin() == 0
    assert not (await su.dev.pulses()).get("7"), "an injected frame pressed the button"
    assert s.noise.is_open  # the controller's own session was never touched
    assert next(injected, None) is None, "not every frame was injected"
    assert read_record(su.dev.state, "pairing.json") == pinned, "the pinned controller changed"
    await su.recover()


async def test_duplicated_press_acts_once(setup: Setup) -> None:
    """A malicious relay duplicates a button press (and later re-sends it): the copy is
    refused, the button is pulsed exactly once."""
    su = setup
    s = await su.session()
    before = (await su.dev.pulses()).get("7", 0)
    su.mitm.hook = once(CONTROLLER, UP, lambda f: kind(f) == TRANSPORT, lambda f: [f, f])
    press = s.next_id
    s.next_id += 1
    await s.send_app({"t": "command", "id": press, "key": "bell", "action": "press"})
    frames = await su.session_frames(5.0, until=lambda p: p[:1] == bytes((RESET,)))
    assert frames[-1][:2] == bytes((RESET, 6)), [f[:2].hex() for f in frames]
    # The genuine copy was executed and answered before the duplicate was refused.
    results = [json.loads(s.noise.receive(f) or b"{}") for f in frames[:-1]]
    assert {"t": "result", "id": press, "ok": True} in results
    await asyncio.sleep(0.3)  # the pulse is 100 ms long
    assert (await su.dev.pulses()).get("7", 0) == before + 1
    await su.recover()


async def test_relay_authentication_cannot_be_proxied(
    relay: RelayProcess, mitm: Mitm, tmp_path: Path
) -> None:
    """The attacker swaps the relay key in AUTH_CHALLENGE for its own (to learn or reuse
    the device's answer): the MAC binds the key, so the real relay refuses it (4001); a
    device that pins the relay key (relay.relay_key) refuses the challenge itself."""
    attacker_pub = bytes.fromhex("9" * 64)

    def swap(data: bytes) -> list[bytes]:
        return [data[:11] + attacker_pub + data[43:]]

    relay_pub = await relay_public_key(relay)
    for pinned in (False, True):
        dev = DeviceProcess(tmp_path / f"device-{pinned}", mitm.ws_device)
        if pinned:
            dev.write_config(relay={"url": mitm.ws_device, "relay_key": relay_pub.hex()})
        provision(dev.state, CODE)
        mitm.capture.clear()
        mitm.hook = once(DEVICE, DOWN, lambda f: f[:1] == b"\x01", swap)
        dev.start()
        try:
            refused = await dev.wait_log_async(
                "relay auth refused" if pinned else "relay closed 4001"
            )
            # The attacked attempt never connected (the retry after it, with its
            # random backoff, may already have: the attacker swaps one challenge).
            assert refused.string[: refused.start()].count("relay connected") == 0
            # Without the attacker the same device connects.
            mitm.hook = None
            dev.stop()
            dev.start()
            await dev.wait_log_async("relay connected")
        finally:
            dev.stop()


async def relay_public_key(relay: RelayProcess) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(f"{relay.base}/api/v1/relay") as r:
        return bytes.fromhex((await r.json())["relay_key"])
