"""The number, select, text_sensor and event kinds on the real firmware (PROTOCOL.md
§7): commands with `value` and `option`, the pins they drive, the text sensor's
address, `event` messages while a session is up (and none for a press without
one), and `restore: last` for numbers and selects (as test_restore.py does for
switches and lights: `kill -9` and a fresh start)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.endpoints import Controller, SessionClient
from testbed.firmware import MORE_KINDS, DeviceProcess, provision

from .statefiles import read_record

pytestmark = pytest.mark.micropython

CODE = "40961357"
# MORE_KINDS: fan_speed (number 0..100 step 5, pwm on 12), colour (select red/green/blue
# on 13/14/15), address (text_sensor ip, every second), wall (event on 16, long 400 ms,
# double 300 ms).


async def _session(dev: DeviceProcess, controller: Controller) -> tuple[SessionClient, bytes]:
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    device_pub = await controller.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    return await controller.open_session(dev.device_id, device_pub), device_pub


async def _press(dev: DeviceProcess, held: float) -> None:
    await dev.set_pin(16, 0)
    await asyncio.sleep(held)
    await dev.set_pin(16, 1)


async def test_commands_events_and_the_text_sensor(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev = make_device(entities=MORE_KINDS)
    s, _ = await _session(dev, controller)
    assert s.describe is not None
    kinds = {e["key"]: e for e in s.describe["entities"]}
    assert kinds["fan_speed"] == {
        "key": "fan_speed", "kind": "number", "name": "Fan speed", "min": 0, "max": 100,
        "step": 5, "unit": "%", "mode": "slider",
    }  # fmt: skip
    assert kinds["colour"]["options"] == ["red", "green", "blue"]
    assert kinds["wall"]["event_types"] == ["single", "double", "long"]
    assert kinds["address"]["category"] == "diagnostic"
    assert s.state == {"fan_speed": 0, "colour": "red", "address": "127.0.0.1", "wall": None}

    assert (await s.command("fan_speed", "set", value=37))["ok"] is True
    assert (await s.wait_for("state"))["s"] == {"fan_speed": 35}
    assert (await dev.pins())["12"] == round(0.35 * 65535)
    r = await s.command("fan_speed", "set", value=101)
    assert (r["ok"], r["error"]) == (False, "bad_value")
    assert (await s.command("colour", "select", option="blue"))["ok"] is True
    assert (await s.wait_for("state"))["s"] == {"colour": "blue"}
    pins = await dev.pins()
    assert (pins["13"], pins["14"], pins["15"]) == (0, 0, 1)
    r = await s.command("colour", "select", option="pink")
    assert (r["ok"], r["error"]) == (False, "bad_value")
    r = await s.command("colour", "turn_on")
    assert (r["ok"], r["error"]) == (False, "unsupported_action")

    await dev.set_pin("ip", "10.1.2.3")
    assert (await s.wait_for("state", within=5))["s"] == {"address": "10.1.2.3"}

    await _press(dev, 0.1)
    assert (await s.wait_for("event", within=5)) == {"t": "event", "key": "wall", "type": "single"}
    await _press(dev, 0.1)
    await asyncio.sleep(0.1)
    await _press(dev, 0.1)
    assert (await s.wait_for("event", within=5))["type"] == "double"
    t0 = time.monotonic()
    await dev.set_pin(16, 0)
    assert (await s.wait_for("event", within=5))["type"] == "long"
    assert time.monotonic() - t0 < 1.5  # sent while still held
    await asyncio.sleep(0.3)
    await dev.set_pin(16, 1)
    await asyncio.sleep(0.6)  # its release sends nothing: the next message is the pong
    await s.send_app({"t": "ping", "id": 7})
    assert (await s.recv_app()) == {"t": "pong", "id": 7}


async def test_a_press_without_a_session_is_not_sent_later(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev = make_device(entities=MORE_KINDS)
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    device_pub = await controller.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    await _press(dev, 0.1)
    await asyncio.sleep(0.8)  # the single fired, with no session to carry it
    s = await controller.open_session(dev.device_id, device_pub)
    await s.send_app({"t": "ping", "id": 9})
    assert (await s.recv_app()) == {"t": "pong", "id": 9}
    assert not [m for m in s.messages if m["t"] == "event"]


async def test_number_and_select_restore_last(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    ents: list[dict[str, Any]] = [
        {**MORE_KINDS[0], "restore": "last", "initial": 50},
        {**MORE_KINDS[1], "restore": "last"},
        {"key": "servo", "kind": "number", "name": "Servo", "min": 0, "max": 180,
         "initial": 90, "output": "servo", "pin": 17},  # restore: off
    ]  # fmt: skip
    dev = make_device(entities=ents)
    dev.fields["save_delay"] = 1
    dev.write_config()
    s, device_pub = await _session(dev, controller)
    pins = await dev.pins()
    assert (pins["12"], pins["13"], pins["17"]) == (32768, 1, 4915)  # 50 %, red, 1.5 ms
    for key, action, arg in (
        ("fan_speed", "set", {"value": 20}),
        ("colour", "select", {"option": "green"}),
        ("servo", "set", {"value": 180}),
    ):
        assert (await s.command(key, action, **arg))["ok"] is True
        await s.wait_for("state")
    state = Path(dev.state)
    deadline = time.monotonic() + 15
    while read_record(state, "outputs.json") != {"fan_speed": 20, "colour": "green"}:
        assert time.monotonic() < deadline, read_record(state, "outputs.json")
        await asyncio.sleep(0.1)

    dev.kill()
    dev.start()
    await dev.wait_log_async("control socket")
    pins = await dev.pins()
    assert (pins["12"], pins["13"], pins["14"], pins["15"]) == (round(0.2 * 65535), 0, 1, 0)
    assert pins["17"] == 4915  # restore off: back at initial
    await dev.wait_log_async("relay connected")
    s = await controller.open_session(dev.device_id, device_pub)
    assert (s.state["fan_speed"], s.state["colour"], s.state["servo"]) == (20, "green", 90)
