"""The number, select, text_sensor, event, colour light, fan and cover kinds and the
health sensors on the real firmware (PROTOCOL.md §7): commands with `value`, `option`,
`rgb`, `kelvin`, `percentage`, `direction` and `position`, the pins they drive (a
cover's travel in time, its two outputs never on together), the text sensor's
address, `event` messages while a session is up (and none for a press without
one), `restore: last` for numbers, selects, colour lights, fans and covers (as
test_restore.py does for switches and lights: `kill -9` and a fresh start), and the
device's own health (uptime, free heap, relay reconnects, Wi-Fi signal, restart
reason)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.accounts import new_account
from testbed.endpoints import Controller, SessionClient
from testbed.firmware import HEALTH, MORE_KINDS, DeviceProcess, provision
from testbed.relay import RelayProcess

from .statefiles import read_record

pytestmark = pytest.mark.micropython

CODE = "40961357"
# MORE_KINDS: fan_speed (number 0..100 step 5, pwm on 12), colour (select red/green/blue
# on 13/14/15), address (text_sensor ip, every second), wall (event on 16, long 400 ms,
# double 300 ms), mood (rgb light on 17/18/19), desk (color_temp light, warm 20, cold 21,
# 2700..6500 K), vent (fan, pwm 22, direction 27), blind (cover, open 28, close 29, 2 s
# each way).
FIRST_STATE = {
    "fan_speed": 0, "colour": "red", "address": "127.0.0.1", "wall": None,
    "mood": {"on": False, "brightness": 255, "rgb": [255, 255, 255]},
    "desk": {"on": False, "brightness": 255, "kelvin": 4600},
    "vent": {"on": False, "percentage": 100, "direction": "forward"},
    "blind": {"position": None, "motion": "idle"},
}  # fmt: skip


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
    assert s.state == FIRST_STATE

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


async def _ok(s: SessionClient, key: str, action: str, **argument: Any) -> None:
    r = await s.command(key, action, **argument)
    assert r["ok"] is True, r


async def _changed(s: SessionClient, key: str, action: str, **argument: Any) -> Any:
    """A command that changes the entity's state: its result, then that state pushed."""
    await _ok(s, key, action, **argument)
    msg = await s.wait_for("state")
    assert list(msg["s"]) == [key], msg
    return msg["s"][key]


async def _refused(s: SessionClient, key: str, action: str, error: str, **argument: Any) -> None:
    r = await s.command(key, action, **argument)
    assert (r["ok"], r.get("error")) == (False, error), r


async def test_colour_lights_and_the_fan_drive_their_pins(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev = make_device(entities=MORE_KINDS)
    s, _ = await _session(dev, controller)
    assert s.describe is not None
    kinds = {e["key"]: e for e in s.describe["entities"]}
    assert kinds["mood"] == {"key": "mood", "kind": "light", "name": "Mood light",
                             "color_mode": "rgb"}  # fmt: skip
    assert kinds["desk"] == {"key": "desk", "kind": "light", "name": "Desk lamp",
                             "color_mode": "color_temp", "min_kelvin": 2700,
                             "max_kelvin": 6500}  # fmt: skip
    assert kinds["vent"] == {"key": "vent", "kind": "fan", "name": "Vent", "reversible": True}
    assert kinds["blind"] == {"key": "blind", "kind": "cover", "name": "Blind",
                              "device_class": "blind"}  # fmt: skip
    pins = await dev.pins()
    assert [pins[p] for p in ("17", "18", "19", "20", "21", "22", "27")] == [0] * 7

    # rgb: each channel is component / 255 x brightness / 255 of full.
    await _ok(s, "mood", "turn_on", rgb=[255, 0, 128], brightness=128)
    assert (await s.wait_for("state"))["s"] == {
        "mood": {"on": True, "brightness": 128, "rgb": [255, 0, 128]}
    }
    pins = await dev.pins()
    assert (pins["17"], pins["18"], pins["19"]) == (32896, 0, 16513)
    await _ok(s, "mood", "turn_on", brightness=255)
    pins = await dev.pins()
    assert (pins["17"], pins["18"], pins["19"]) == (65535, 0, 32896)  # the colour kept
    await _refused(s, "mood", "turn_on", "bad_value", kelvin=3000)
    await _refused(s, "mood", "turn_on", "bad_value", rgbw=[1, 2, 3, 4])
    await _ok(s, "mood", "turn_off")
    pins = await dev.pins()
    assert (pins["17"], pins["18"], pins["19"]) == (0, 0, 0)

    # color_temp: the brightness split, cold share (kelvin - 2700) / 3800; pins [warm, cold].
    await _ok(s, "desk", "turn_on")
    pins = await dev.pins()
    assert (pins["20"], pins["21"]) == (32767, 32768)  # 4600 K, the midpoint
    desk = await _changed(s, "desk", "turn_on", kelvin=6500)
    assert desk == {"on": True, "brightness": 255, "kelvin": 6500}
    pins = await dev.pins()
    assert (pins["20"], pins["21"]) == (0, 65535)
    await _ok(s, "desk", "turn_on", kelvin=3650, brightness=102)
    pins = await dev.pins()
    assert (pins["20"], pins["21"]) == (19660, 6554)
    await _refused(s, "desk", "turn_on", "bad_value", kelvin=7000)  # beyond max_kelvin
    await _refused(s, "desk", "turn_on", "bad_value", rgb=[255, 0, 0])
    await _refused(s, "desk", "turn_on", "bad_value", percentage=50)

    # The fan: percentage of full duty, kept while off; the direction output.
    await _ok(s, "vent", "turn_on", percentage=50)
    assert (await s.wait_for("state"))["s"] == {
        "vent": {"on": True, "percentage": 50, "direction": "forward"}
    }
    pins = await dev.pins()
    assert (pins["22"], pins["27"]) == (32768, 0)
    await _ok(s, "vent", "set_direction", direction="reverse")
    assert (await s.wait_for("state"))["s"]["vent"]["direction"] == "reverse"
    pins = await dev.pins()
    assert (pins["22"], pins["27"]) == (32768, 1)
    await _refused(s, "vent", "turn_on", "bad_value", percentage=0)
    await _refused(s, "vent", "turn_on", "bad_value", brightness=9)
    await _refused(s, "mood", "set_direction", "unsupported_action", direction="forward")
    vent = await _changed(s, "vent", "turn_off")
    assert vent == {"on": False, "percentage": 50, "direction": "reverse"}
    assert (await dev.pins())["22"] == 0
    await _ok(s, "vent", "turn_on")
    assert (await dev.pins())["22"] == 32768


async def _until_state(s: SessionClient, key: str, want: dict[str, Any], within: float) -> float:
    """Read messages until `key`'s state is `want`; the seconds it took."""
    t0 = time.monotonic()
    while s.state.get(key) != want:
        assert time.monotonic() - t0 < within, s.state.get(key)
        await s.recv_app(max(0.05, within - (time.monotonic() - t0)))
    return time.monotonic() - t0


async def test_the_cover_travels_in_time_and_never_drives_both_outputs(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev = make_device(entities=MORE_KINDS)
    s, _ = await _session(dev, controller)
    assert s.state["blind"] == {"position": None, "motion": "idle"}
    await _refused(s, "blind", "set_position", "position_unknown", position=50)

    # From an unknown position: the whole 2 s of travel, then it knows it is open.
    t0 = time.monotonic()
    assert (await _changed(s, "blind", "open")) == {"position": None, "motion": "opening"}
    pins = await dev.pins()
    assert (pins["28"], pins["29"]) == (1, 0)
    await _until_state(s, "blind", {"position": 100, "motion": "idle"}, within=5)
    assert 1.8 < time.monotonic() - t0 < 3.0
    pins = await dev.pins()
    assert (pins["28"], pins["29"]) == (0, 0)

    # Half way down: 1 s of the close output (at once: the open one stopped, this is no
    # reversal), then off.
    t0 = time.monotonic()
    assert (await _changed(s, "blind", "set_position", position=50))["motion"] == "closing"
    assert (await dev.pins())["29"] == 1
    await _until_state(s, "blind", {"position": 50, "motion": "idle"}, within=5)
    assert 0.8 < time.monotonic() - t0 < 2.0
    pins = await dev.pins()
    assert (pins["28"], pins["29"]) == (0, 0)

    # Reversing: open, then close while it runs; sampled every few ms, the two outputs
    # are never on together, and the close output waits out the interlock.
    await _ok(s, "blind", "open")
    await asyncio.sleep(0.3)
    samples: list[tuple[int, int]] = []

    async def sample(until: float) -> None:
        while time.monotonic() < until:
            pins = await dev.pins()
            samples.append((pins["28"], pins["29"]))

    sampler = asyncio.create_task(sample(time.monotonic() + 1.2))
    await asyncio.sleep(0.1)
    await _ok(s, "blind", "close")
    await sampler
    assert (1, 1) not in samples, samples
    assert (samples[0], samples[-1]) == ((1, 0), (0, 1)), samples
    assert (0, 0) in samples, "no gap between the outputs"
    blind = await _changed(s, "blind", "stop")
    assert blind["motion"] == "idle", blind
    assert blind["position"] < 70, blind  # it went down again
    pins = await dev.pins()
    assert (pins["28"], pins["29"]) == (0, 0)
    # At the end already: an open that has nowhere to go, once it is there.
    await _ok(s, "blind", "close")
    await _until_state(s, "blind", {"position": 0, "motion": "idle"}, within=3)
    await _ok(s, "blind", "close")
    assert s.state["blind"] == {"position": 0, "motion": "idle"}
    assert (await dev.pins())["29"] == 0


async def test_colour_light_fan_and_cover_restore_last(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    by_key = {e["key"]: e for e in MORE_KINDS}
    ents = [
        {**by_key["mood"], "restore": "last"},
        {**by_key["desk"], "restore": "last"},
        {**by_key["vent"], "restore": "last"},
        by_key["blind"],  # restore: last is a cover's default
    ]
    dev = make_device(entities=ents)
    dev.fields["save_delay"] = 1
    dev.write_config()
    s, device_pub = await _session(dev, controller)
    await _ok(s, "mood", "turn_on", rgb=[0, 255, 0], brightness=51)
    await _ok(s, "desk", "turn_on", kelvin=2700)
    await _ok(s, "desk", "turn_off")
    await _ok(s, "vent", "turn_on", percentage=25)
    await _ok(s, "vent", "set_direction", direction="reverse")
    await _ok(s, "blind", "close")  # the position saved when it stops, 2 s later
    want = {
        "mood": {"on": True, "brightness": 51, "rgb": [0, 255, 0]},
        "desk": {"on": False, "brightness": 255, "kelvin": 2700},
        "vent": {"on": True, "percentage": 25, "direction": "reverse"},
        "blind": 0,
    }
    state = Path(dev.state)
    deadline = time.monotonic() + 15
    while read_record(state, "outputs.json") != want:
        assert time.monotonic() < deadline, read_record(state, "outputs.json")
        await asyncio.sleep(0.1)

    dev.kill()
    dev.start()
    await dev.wait_log_async("control socket")
    pins = await dev.pins()
    assert (pins["17"], pins["18"], pins["19"]) == (0, 13107, 0)
    assert (pins["20"], pins["21"], pins["22"], pins["27"]) == (0, 0, 16384, 1)
    assert (pins["28"], pins["29"]) == (0, 0)  # a cover's outputs are off at boot
    await dev.wait_log_async("relay connected")
    controller.drain()  # the old session's state pushes (the cover's, while it moved)
    s = await controller.open_session(dev.device_id, device_pub)
    assert s.state["blind"] == {"position": 0, "motion": "idle"}
    assert s.state["desk"] == want["desk"]
    assert s.state["vent"] == want["vent"]
    await _ok(s, "blind", "set_position", position=25)  # known: no position_unknown
    await _until_state(s, "blind", {"position": 25, "motion": "idle"}, within=3)


# ---------------------------------------------------------------- the device's health


async def test_health_sensors(
    make_device: Callable[..., DeviceProcess], own_relay: RelayProcess
) -> None:
    _, tok = await new_account(own_relay.base)
    ctl = await Controller(own_relay.base, tok).connect()
    dev = make_device(own_relay.device_url, entities=HEALTH)
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    device_pub = await ctl.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    s = await ctl.open_session(dev.device_id, device_pub)
    assert s.describe is not None
    kinds = {e["key"]: e for e in s.describe["entities"]}
    assert kinds["uptime"] == {
        "key": "uptime", "kind": "sensor", "name": "Uptime", "category": "diagnostic",
        "disabled_by_default": True, "device_class": "duration", "unit": "s",
        "state_class": "total_increasing",
    }  # fmt: skip
    assert kinds["free_heap"] == {
        "key": "free_heap", "kind": "sensor", "name": "Free heap", "category": "diagnostic",
        "disabled_by_default": True, "device_class": "data_size", "unit": "B",
        "state_class": "measurement",
    }  # fmt: skip
    assert kinds["reconnects"] == {
        "key": "reconnects", "kind": "sensor", "name": "Reconnects", "category": "diagnostic",
        "state_class": "total_increasing",
    }  # fmt: skip
    assert kinds["wifi_signal"] == {
        "key": "wifi_signal", "kind": "sensor", "name": "Wi-Fi signal",
        "category": "diagnostic", "disabled_by_default": True,
        "device_class": "signal_strength", "unit": "dBm", "state_class": "measurement",
    }  # fmt: skip
    assert kinds["restart_reason"]["category"] == "diagnostic"
    first = dict(s.state)
    assert type(first["uptime"]) is int
    assert first["uptime"] >= 0
    assert type(first["free_heap"]) is int
    assert first["free_heap"] > 0
    assert (first["reconnects"], first["wifi_signal"]) == (0, -60)
    assert first["restart_reason"] == "power_on"

    # Uptime grows (each sensor is read every second); the Wi-Fi signal follows the sim.
    await dev.set_pin("rssi", -72)
    deadline = time.monotonic() + 10
    while not (s.state["uptime"] >= first["uptime"] + 2 and s.state["wifi_signal"] == -72):
        assert time.monotonic() < deadline, s.state
        await s.recv_app(5)
    assert type(s.state["free_heap"]) is int
    assert s.state["free_heap"] > 0

    # The relay restarts: the device connects again, and counts it.
    await ctl.close()
    own_relay.stop()
    await dev.wait_log_async(r"relay closed 1012")
    own_relay.start()
    await dev.wait_log_async("relay connected", count=2, within=30)
    ctl = await Controller(own_relay.base, tok, key=ctl.key).connect()
    try:
        # The device may still push on the session it held before the restart.
        s = await ctl.open_session(dev.device_id, device_pub, previous=s)
        deadline = time.monotonic() + 5
        while s.state["reconnects"] != 1:
            assert time.monotonic() < deadline, s.state
            await s.recv_app(5)
        assert s.state["restart_reason"] == "power_on"  # a reconnect is no restart
    finally:
        await ctl.close()
