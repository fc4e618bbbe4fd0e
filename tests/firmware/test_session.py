"""Sessions and entities on the real firmware through the real relay (§6, §7).

Every entity kind is driven with commands and read back on the simulated pins
(hw_sim's control socket); inputs are set on the pins and must come back as
state pushes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable

import pytest

from homeseal_protocol.envelope import FrameType
from homeseal_protocol.session import InitiatorSession
from testbed.endpoints import Controller, SessionClient
from testbed.firmware import TEST_ENTITIES as ENTITIES
from testbed.firmware import DeviceProcess, provision

pytestmark = pytest.mark.micropython

CODE = "40961357"


async def paired(
    make_device: Callable[..., DeviceProcess], ctl: Controller, state_interval: int = 60
) -> tuple[DeviceProcess, bytes]:
    dev = make_device()
    dev.write_config(state_interval=state_interval)
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    device_pub = await ctl.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    return dev, device_pub


async def test_describe_state_and_commands_for_every_entity(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev, device_pub = await paired(make_device, controller, state_interval=5)
    s = await controller.open_session(dev.device_id, device_pub)
    opened = time.monotonic()

    assert s.describe is not None
    assert s.describe["fw"]
    assert s.describe["model"] == "homeseal-mpy"
    assert s.describe["name"] == "Test device"
    described = {e["key"]: e for e in s.describe["entities"]}
    assert [e["key"] for e in s.describe["entities"]] == [e["key"] for e in ENTITIES]
    assert described["temp"] == {
        "key": "temp", "kind": "sensor", "name": "Temperature", "unit": "°C",
        "device_class": "temperature", "state_class": "measurement",
    }  # fmt: skip
    assert described["chip"] == {
        "key": "chip", "kind": "sensor", "name": "Chip",
        "category": "diagnostic", "disabled_by_default": True,
    }  # fmt: skip
    assert "category" not in described["relay1"]
    assert described["door"] == {
        "key": "door",
        "kind": "binary_sensor",
        "name": "Door",
        "device_class": "door",
    }
    assert s.state == {
        "relay1": False,
        "lamp": {"on": False, "brightness": 255},
        "temp": 0.0,
        "chip": 25.0,
        "door": True,  # pulled up, contact open
        "bell": None,
    }

    # switch: GPIO 5
    assert await s.command("relay1", "turn_on") == {"t": "result", "id": 1, "ok": True}
    await s.wait_for("state", s={"relay1": True})
    assert (await dev.pins())["5"] == 1
    await s.command("relay1", "turn_off")
    await s.wait_for("state", s={"relay1": False})
    assert (await dev.pins())["5"] == 0

    # light: PWM on GPIO 6, duty_u16 = brightness * 257
    assert (await s.command("lamp", "turn_on", brightness=128))["ok"]
    await s.wait_for("state", s={"lamp": {"on": True, "brightness": 128}})
    assert (await dev.pins())["6"] == 128 * 257
    await s.command("lamp", "turn_off")
    await s.wait_for("state", s={"lamp": {"on": False, "brightness": 128}})
    assert (await dev.pins())["6"] == 0
    await s.command("lamp", "turn_on")  # back to the last brightness
    await s.wait_for("state", s={"lamp": {"on": True, "brightness": 128}})
    assert (await dev.pins())["6"] == 128 * 257
    bad = await s.command("lamp", "turn_on", brightness=0)
    assert bad == {"t": "result", "id": bad["id"], "ok": False, "error": "bad_value"}

    # button: a momentary pulse on GPIO 7, exactly once even when the command is retried
    pulses = (await dev.pulses())["7"]
    press = await s.command("bell", "press", cid=1000)
    assert press["ok"]
    assert (await dev.pulses())["7"] == pulses + 1
    await asyncio.sleep(0.3)  # pulse_ms is 100
    assert (await dev.pins())["7"] == 0
    assert await s.command("bell", "press", cid=1000) == press
    assert (await dev.pulses())["7"] == pulses + 1

    # binary_sensor: GPIO 4 with pull-up, debounced
    await dev.set_pin(4, 0)
    await s.wait_for("state", s={"door": False})
    await dev.set_pin(4, 1)
    await s.wait_for("state", s={"door": True})

    # sensors: ADC on GPIO 26 (scale 0.01) and the internal temperature
    await dev.set_pin(26, 2345)
    await s.wait_for("state", s={"temp": 23.45})
    await dev.set_pin("internal_temp", 31.5)
    await s.wait_for("state", s={"chip": 31.5})

    # errors are results, not session failures
    for key, action, error in (
        ("temp", "turn_on", "unsupported_action"),
        ("door", "press", "unsupported_action"),
        ("relay1", "press", "unsupported_action"),
        ("nothing", "turn_on", "unknown_entity"),
    ):
        r = await s.command(key, action)
        assert (r["ok"], r.get("error")) == (False, error), (key, action)
    r = await s.command("relay1", "turn_on", brightness=5)
    assert r.get("error") == "bad_value"

    # ping / pong
    await s.send_app({"t": "ping", "id": 77})
    assert await s.wait_for("pong") == {"t": "pong", "id": 77}

    # The slow periodic push: every entity, every state_interval (5 s here).
    full = await s.wait_for("state", within=8)
    while len(full["s"]) < len(ENTITIES):
        full = await s.wait_for("state", within=8)
    assert time.monotonic() - opened >= 4.5
    assert full["s"]["lamp"] == {"on": True, "brightness": 128}
    assert full["s"]["chip"] == 31.5
    assert dev.alive


async def test_frames_for_a_closed_or_broken_session(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev, device_pub = await paired(make_device, controller)
    device_id = dev.device_id

    async def reset() -> bytes:
        _, _, payload = await controller.recv((FrameType.SESSION,))
        assert payload[0] == 0x04, payload
        return payload[1:]

    # TRANSPORT with no session open: RESET no_session.
    await controller.send(FrameType.SESSION, device_id, b"\x03" + os.urandom(40))
    assert await reset() == b"\x01"

    # A flipped bit ends the session (RESET decrypt_failed); the next message of
    # that session finds none (no_session).
    s = await controller.open_session(device_id, device_pub)
    good = s.noise.encrypt(json.dumps({"t": "ping", "id": 1}).encode())
    flipped = bytearray(s.noise.encrypt(json.dumps({"t": "ping", "id": 2}).encode()))
    flipped[5] ^= 1
    await controller.send(FrameType.SESSION, device_id, bytes(flipped))
    assert await reset() == b"\x06"
    await dev.wait_log_async("session closed: decrypt failed")
    await controller.send(FrameType.SESSION, device_id, good)
    assert await reset() == b"\x01"

    # A valid encryption of something that is not an application message.
    s = await controller.open_session(device_id, device_pub)
    await controller.send(
        FrameType.SESSION, device_id, s.noise.encrypt(b'{"t":"command","id":1,"key":"x"}')
    )
    assert await reset() == b"\x05"
    await dev.wait_log_async("session closed: protocol error")

    # A HANDSHAKE1 that does not decrypt: RESET handshake_failed (two bytes, L3);
    # the open session is not touched by it.
    s = await controller.open_session(device_id, device_pub)
    await controller.send(FrameType.SESSION, device_id, b"\x01" + os.urandom(48))
    assert await reset() == b"\x02"
    assert (await s.command("relay1", "turn_on"))["ok"]
    await s.wait_for("state", s={"relay1": True})

    # Another controller of the same account is not the paired one: not_paired.
    other = await Controller(controller.base, controller.token).connect()
    try:
        intruder = InitiatorSession(other.key, device_pub, device_id, other.id)
        await other.send(FrameType.SESSION, device_id, intruder.start())
        _, _, payload = await other.recv((FrameType.SESSION,))
        assert payload == b"\x04\x03"
    finally:
        await other.close()

    # Unknown SESSION kinds and an empty payload are answered, and the session survives.
    await controller.send(FrameType.SESSION, device_id, b"\x09abc")
    assert await reset() == b"\x05"
    await controller.send(FrameType.SESSION, device_id, b"")
    assert await reset() == b"\x05"
    # RESET from the controller is only logged.
    await controller.send(FrameType.SESSION, device_id, b"\x04\x01")
    await dev.wait_log_async("session reset by controller")
    assert (await s.command("relay1", "turn_off"))["ok"]
    await s.wait_for("state", s={"relay1": False})

    # A new handshake replaces the session. The device has answered 4 HANDSHAKE1 of
    # the pinned controller within seconds (one forged): its budget (L4) answers the
    # next one once a token is back, one per 5 s.
    await asyncio.sleep(5)
    s2 = SessionClient(controller, device_id, device_pub)
    await s2.open()
    assert (await s2.command("lamp", "turn_on"))["ok"]
    assert dev.alive
