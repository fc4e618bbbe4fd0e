"""Pairing on the real firmware through the real relay (PROTOCOL.md §5).

The controller side is the integration's ControllerPairing; the device runs
firmware/main.py on the unix port with simulated pins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from custom_components.homeseal.client import ids
from custom_components.homeseal.client.envelope import FrameType
from custom_components.homeseal.client.pairing import (
    ControllerPairing,
    LockedOut,
    NotInPairingMode,
    WrongCode,
)

from .harness import Controller, DeviceProcess, RelayProcess, new_account, provision

CODE = "20231187"
WRONG = "20231188"


def read_state(dev: DeviceProcess, name: str) -> dict[str, Any] | None:
    path = dev.state / name
    return json.loads(path.read_text()) if path.exists() else None


async def owned_devices(relay: RelayProcess, token: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{relay.http}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status == 200
        return (await r.json())["devices"]  # type: ignore[no-any-return]


async def test_pair_with_the_right_code(
    make_device: Callable[..., DeviceProcess], controller: Controller, relay: RelayProcess
) -> None:
    dev = make_device()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log("pairing window open attempts_left=20")
    await dev.wait_log("relay connected claimed=0")

    device_pub = await controller.pair(dev.device_id, CODE)

    # Each side pinned the other's static key; the relay recorded the claim.
    assert device_pub == dev.public_key
    await dev.wait_log("claimed by controller " + ids.format_id(controller.id))
    pairing = read_state(dev, "pairing.json")
    assert pairing == {
        "controller_id": controller.id.hex(),
        "controller_key": controller.public.hex(),
        "claimed": True,
    }
    assert read_state(dev, "attempts.json") == {"failed": 0}
    assert "pairing window closed: paired" in dev.output()
    devices = await owned_devices(relay, controller.token)
    assert [d["device_id"] for d in devices] == [ids.format_id(dev.device_id)]

    # The window is closed: the same controller cannot pair again.
    with pytest.raises(NotInPairingMode):
        await controller.pair(dev.device_id, CODE)

    # After a restart the device is still paired and opens no window.
    dev.stop()
    dev.start()
    await dev.wait_log("relay connected claimed=1")
    assert "paired with controller " + ids.format_id(controller.id) in dev.output()
    assert "pairing window open" not in dev.output()


async def test_wrong_codes_are_counted_durably_and_close_the_window(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev = make_device()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log("relay connected")

    for failed in (1, 2):
        with pytest.raises(WrongCode):
            await controller.pair(dev.device_id, WRONG)
        # Counted before the device answered PAKE1, so already on disk.
        assert read_state(dev, "attempts.json") == {"failed": failed}

    # A power cycle does not reset the counter.
    dev.stop()
    dev.start()
    await dev.wait_log("pairing window open attempts_left=18")
    await dev.wait_log("relay connected")

    # A controller that ignores a bad confirmV and sends PAKE3 anyway is refused
    # by the device's own check of confirmP.
    attempt = ControllerPairing(dev.device_id, controller.key, WRONG)
    await controller.send(FrameType.PAIR_START, dev.device_id, attempt.start())
    _, _, params = await controller.recv((FrameType.PAIR,))
    assert params[0] == 0x02
    assert params[-1] == 18
    pake1 = attempt.receive(params)
    assert pake1 is not None
    await controller.send(FrameType.PAIR, dev.device_id, pake1)
    _, _, pake2 = await controller.recv((FrameType.PAIR,))
    assert pake2[0] == 0x04
    assert len(pake2) == 98
    await controller.send(FrameType.PAIR, dev.device_id, b"\x05" + os.urandom(80))
    _, _, err = await controller.recv((FrameType.PAIR,))
    assert err == bytes((0x7F, 2, 17))  # PAIR_ERROR wrong_code, 17 attempts left
    assert read_state(dev, "attempts.json") == {"failed": 3}

    # Pretend the device already saw 19 failures: the 20th closes the window.
    dev.stop()
    (dev.state / "attempts.json").write_text(json.dumps({"failed": 19}))
    dev.start()
    await dev.wait_log("pairing window open attempts_left=1")
    await dev.wait_log("relay connected")
    with pytest.raises(WrongCode):
        await controller.pair(dev.device_id, WRONG)
    await dev.wait_log("pairing window closed: failed-attempt limit reached")
    assert read_state(dev, "attempts.json") == {"failed": 20}
    with pytest.raises(LockedOut):
        await controller.pair(dev.device_id, CODE)

    # Still locked after a restart; a long press of the pairing button reopens
    # the window with a fresh counter.
    dev.stop()
    dev.start()
    await dev.wait_log("pairing locked out")
    await dev.wait_log("relay connected")
    await dev.hold_button(500)
    await dev.wait_log("pairing window open attempts_left=20")
    assert await controller.pair(dev.device_id, CODE) == dev.public_key
    assert read_state(dev, "attempts.json") == {"failed": 0}


async def test_one_attempt_at_a_time_and_bad_pairing_messages(
    make_device: Callable[..., DeviceProcess], controller: Controller, relay: RelayProcess
) -> None:
    dev = make_device()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log("relay connected")
    device_id = dev.device_id

    # Malformed first messages: not a PBKDF_PARAM_REQUEST, a wrong version.
    await controller.send(FrameType.PAIR_START, device_id, b"\x03" + bytes(65))
    assert (await controller.recv((FrameType.PAIR,)))[2][:2] == bytes((0x7F, 5))
    await controller.send(FrameType.PAIR_START, device_id, b"\x01\x02")
    assert (await controller.recv((FrameType.PAIR,)))[2][:2] == bytes((0x7F, 7))
    # PAKE1 with a point that is not on the curve: bad_message (and it counts).
    await controller.send(FrameType.PAIR_START, device_id, b"\x01\x01")
    assert (await controller.recv((FrameType.PAIR,)))[2][0] == 0x02
    await controller.send(FrameType.PAIR, device_id, b"\x03\x04" + bytes(64))
    assert (await controller.recv((FrameType.PAIR,)))[2][:2] == bytes((0x7F, 5))
    assert read_state(dev, "attempts.json") == {"failed": 1}

    # A second controller (another account) while the first one's attempt runs: busy.
    await controller.send(FrameType.PAIR_START, device_id, b"\x01\x01")
    assert (await controller.recv((FrameType.PAIR,)))[2][0] == 0x02
    _, token = await new_account(relay.http)
    other = await Controller(relay.http, token).connect()
    try:
        await other.send(FrameType.PAIR_START, device_id, b"\x01\x01")
        _, _, reply = await other.recv((FrameType.PAIR,))
        assert reply[:2] == bytes((0x7F, 4))
    finally:
        await other.close()
    assert dev.alive


async def test_unpair_from_the_session_and_factory_reset(
    make_device: Callable[..., DeviceProcess], controller: Controller, relay: RelayProcess
) -> None:
    dev = make_device()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log("relay connected")
    device_pub = await controller.pair(dev.device_id, CODE)
    session = await controller.open_session(dev.device_id, device_pub)

    await session.send_app({"t": "unpair", "id": 7})
    assert (await session.wait_for("result", id=7))["ok"] is True
    await dev.wait_log("forgetting the controller: unpaired by the controller")
    await dev.wait_log("pairing window open attempts_left=20", count=2)
    assert read_state(dev, "pairing.json") is None

    async def released() -> bool:
        return not await owned_devices(relay, controller.token)

    for _ in range(50):
        if await released():
            break
    assert await released()

    # Pair again (the window is open), then forget by holding the button.
    device_pub = await controller.pair(dev.device_id, CODE)
    await dev.wait_log("claimed by controller")
    await dev.hold_button(1600)
    await dev.wait_log("forgetting the controller: factory reset")
    assert read_state(dev, "pairing.json") is None
    # The device key survives a factory reset: the label stays valid.
    assert dev.public_key == device_pub
    assert await controller.pair(dev.device_id, CODE) == device_pub


async def test_the_window_closes_after_its_time(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    # 15 minutes in the field; main.py --window-seconds shortens it for tests.
    dev = make_device(args=["--window-seconds", "2"])
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log("relay connected")
    await dev.wait_log("pairing window closed: timeout", within=5)
    with pytest.raises(NotInPairingMode):
        await controller.pair(dev.device_id, CODE)
    await dev.hold_button(500)
    await dev.wait_log("pairing window open attempts_left=20", count=2)
    assert await controller.pair(dev.device_id, CODE) == dev.public_key


async def test_release_at_connect_after_an_offline_factory_reset(
    make_device: Callable[..., DeviceProcess], controller: Controller, relay: RelayProcess
) -> None:
    """A device that forgot its controller while offline finds itself claimed at the
    relay (AUTH_OK flag): it sends RELEASE as the first control frame of the new
    connection (seq 1 under that connection's k_ctl, §4.1) and the relay accepts it."""
    dev = make_device()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log("relay connected")
    await controller.pair(dev.device_id, CODE)
    await dev.wait_log("claimed by controller")
    assert len(await owned_devices(relay, controller.token)) == 1
    dev.stop()
    (dev.state / "pairing.json").unlink()
    dev.start()
    await dev.wait_log("unpaired but claimed at the relay: releasing")
    for _ in range(50):
        if not await owned_devices(relay, controller.token):
            break
    assert await owned_devices(relay, controller.token) == []
    assert dev.count("relay closed 4001") == 0
    assert dev.count("relay connected") == 1
