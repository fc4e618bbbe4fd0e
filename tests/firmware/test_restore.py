"""Outputs after a reboot (config `restore`, firmware/README.md "Restore after a
reboot"): `off` (the default) boots off, `on` boots on, `last` boots as the output
was. `last` states are written `save_delay` seconds after a change, into a
power-safe record (store.py), so a burst of changes costs one flash write.
Every case is a `kill -9` of the real firmware and a fresh start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.endpoints import Controller, SessionClient
from testbed.firmware import DeviceProcess, provision

from .statefiles import parse_slot, read_record, slot_files

pytestmark = pytest.mark.micropython

CODE = "40961357"
OUTPUTS = "outputs.json"
ENTITIES = [
    {"key": "heater", "kind": "switch", "name": "Heater", "pin": 5, "restore": "last"},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": 6, "restore": "last"},
    {"key": "fan", "kind": "switch", "name": "Fan", "pin": 7, "restore": "on"},
    {"key": "pump", "kind": "switch", "name": "Pump", "pin": 8},  # restore: off
    {"key": "porch", "kind": "light", "name": "Porch", "pin": 9, "restore": "on"},
]


def _seq(state: Path) -> int:
    """The newest valid write of the outputs record (0: never written)."""
    slots = [parse_slot(p.read_text()) for p in slot_files(state, OUTPUTS)]
    return max((s[0] for s in slots if s is not None), default=0)


async def _saved(dev: DeviceProcess, want: dict[str, Any], within: float = 15) -> None:
    deadline = time.monotonic() + within
    while (got := read_record(dev.state, OUTPUTS)) != want:
        assert time.monotonic() < deadline, f"outputs record {got}, want {want}"
        await asyncio.sleep(0.1)


async def _reboot(dev: DeviceProcess) -> dict[str, Any]:
    """kill -9, start again; the pins as the device set them at boot, before any
    controller could have said anything."""
    dev.kill()
    dev.start()
    await dev.wait_log_async("control socket")
    return await dev.pins()


async def _commands(s: SessionClient, *commands: tuple[str, str, int | None]) -> None:
    """Commands that each change their output: the result, then the state push (read
    here, so that no frame of this session is left for the next one to trip on)."""
    for key, action, brightness in commands:
        assert (await s.command(key, action, brightness=brightness))["ok"] is True
        await s.wait_for("state")


async def test_outputs_come_back_as_their_restore_says(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev = make_device(entities=ENTITIES)
    dev.fields["save_delay"] = 1
    dev.write_config()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    pins = await dev.pins()
    # First boot: nothing saved yet; `on` outputs are on (a light at full brightness).
    assert (pins["5"], pins["6"], pins["7"], pins["8"], pins["9"]) == (0, 0, 1, 0, 65535)
    assert read_record(dev.state, OUTPUTS) is None  # nothing changed: nothing written

    device_pub = await controller.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    s = await controller.open_session(dev.device_id, device_pub)
    await _commands(
        s,
        ("heater", "turn_on", None),
        ("lamp", "turn_on", 77),
        ("fan", "turn_off", None),
        ("pump", "turn_on", None),
        ("porch", "turn_off", None),
    )
    # Only the `last` outputs are saved.
    await _saved(dev, {"heater": True, "lamp": {"on": True, "brightness": 77}})

    pins = await _reboot(dev)
    assert (pins["5"], pins["6"], pins["7"], pins["8"], pins["9"]) == (1, 77 * 257, 1, 0, 65535)
    await dev.wait_log_async("relay connected")
    s = await controller.open_session(dev.device_id, device_pub)
    assert s.state == {
        "heater": True,
        "lamp": {"on": True, "brightness": 77},
        "fan": True,
        "pump": False,
        "porch": {"on": True, "brightness": 255},
    }

    # Off again: the lamp comes back off, keeping the brightness turn_on returns to.
    await _commands(s, ("heater", "turn_off", None), ("lamp", "turn_off", None))
    await _saved(dev, {"heater": False, "lamp": {"on": False, "brightness": 77}})
    pins = await _reboot(dev)
    assert (pins["5"], pins["6"]) == (0, 0)
    await dev.wait_log_async("relay connected")
    s = await controller.open_session(dev.device_id, device_pub)
    assert s.state["lamp"] == {"on": False, "brightness": 77}
    await _commands(s, ("lamp", "turn_on", None))
    assert (await dev.pins())["6"] == 77 * 257


async def test_a_burst_of_changes_is_one_write(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    """Flash wear: 15 changes over about 3 s, within the save delay, are written once,
    with the last state; a change undone within the delay is not written at all."""
    dev = make_device(entities=ENTITIES[:2])
    dev.fields["save_delay"] = 6
    dev.write_config()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    device_pub = await controller.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    s = await controller.open_session(dev.device_id, device_pub)

    for level in range(1, 16):
        await _commands(s, ("lamp", "turn_on", level * 10))
        await asyncio.sleep(0.2)
    await _saved(dev, {"heater": False, "lamp": {"on": True, "brightness": 150}})
    assert _seq(dev.state) == 1
    await _commands(s, ("heater", "turn_on", None), ("heater", "turn_off", None))
    await asyncio.sleep(8)  # longer than the delay and its one-second tick
    assert _seq(dev.state) == 1


@pytest.mark.parametrize(
    "record",
    [
        "{not json",  # a slot no write of the device leaves (corruption)
        '{"heater": "yes", "lamp": {"on": true, "brightness": 999}}',
        '{"heater": 1, "lamp": [1]}',
    ],
    ids=["corrupt", "bad values", "bad shape"],
)
async def test_a_bad_outputs_record_boots_the_outputs_off(
    make_device: Callable[..., DeviceProcess], record: str
) -> None:
    """Whatever the record holds, the device boots, and a `last` output it cannot
    trust starts off (never on because of a value it could not read)."""
    dev = make_device(entities=ENTITIES[:2])
    provision(dev.state, CODE)
    (dev.state / OUTPUTS).write_text(record)
    (dev.state / (OUTPUTS + ".b")).write_text(record)
    dev.start()
    await dev.wait_log_async("relay connected")
    pins = await dev.pins()
    assert (pins["5"], pins["6"]) == (0, 0)
    assert dev.alive
