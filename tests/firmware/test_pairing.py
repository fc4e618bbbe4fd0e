"""Pairing on the real firmware through the real relay (PROTOCOL.md §5).

The controller side is the integration's ControllerPairing; the device runs
firmware/main.py on the unix port with simulated pins.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from homeseal_protocol import ids
from homeseal_protocol.envelope import FrameType
from homeseal_protocol.errors import PairingError, PairingFailure
from homeseal_protocol.pairing import ControllerPairing
from testbed.accounts import new_account
from testbed.endpoints import Controller
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess
from tests.firmware.statefiles import read_record, write_plain
from tests.support import raises_pairing

pytestmark = pytest.mark.micropython

CODE = "20231187"
WRONG = "20231188"
UNPAIRED = {"controller_id": None}


def read_state(dev: DeviceProcess, name: str) -> dict[str, Any] | None:
    return read_record(dev.state, name)


async def owned_devices(relay: RelayProcess, token: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{relay.base}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status == 200
        return (await r.json())["devices"]  # type: ignore[no-any-return]


async def test_pair_with_the_right_code(
    make_device: Callable[..., DeviceProcess], controller: Controller, relay: RelayProcess
) -> None:
    dev = make_device()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("pairing window open attempts_left=20")
    await dev.wait_log_async("relay connected claimed=0")

    device_pub = await controller.pair(dev.device_id, CODE)

    # Each side pinned the other's static key; the relay recorded the claim.
    assert device_pub == dev.public_key
    await dev.wait_log_async("claimed by controller " + ids.format_id(controller.id))
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
    with raises_pairing(PairingFailure.NOT_IN_PAIRING_MODE):
        await controller.pair(dev.device_id, CODE)

    # After a restart the device is still paired and opens no window.
    dev.stop()
    dev.start()
    await dev.wait_log_async("relay connected claimed=1")
    assert "paired with controller " + ids.format_id(controller.id) in dev.output()
    assert "pairing window open" not in dev.output()


async def test_wrong_codes_are_counted_durably_and_close_the_window(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    dev = make_device()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")

    for failed in (1, 2):
        with raises_pairing(PairingFailure.WRONG_CODE):
            await controller.pair(dev.device_id, WRONG)
        # Counted before the device answered PAKE1, so already on disk.
        assert read_state(dev, "attempts.json") == {"failed": failed}

    # A power cycle does not reset the counter.
    dev.stop()
    dev.start()
    await dev.wait_log_async("pairing window open attempts_left=18")
    await dev.wait_log_async("relay connected")

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
    write_plain(dev.state, "attempts.json", {"failed": 19})
    dev.start()
    await dev.wait_log_async("pairing window open attempts_left=1")
    await dev.wait_log_async("relay connected")
    with raises_pairing(PairingFailure.WRONG_CODE):
        await controller.pair(dev.device_id, WRONG)
    await dev.wait_log_async("pairing window closed: failed-attempt limit reached")
    assert read_state(dev, "attempts.json") == {"failed": 20}
    with raises_pairing(PairingFailure.LOCKED_OUT):
        await controller.pair(dev.device_id, CODE)

    # Still locked after a restart; a long press of the pairing button reopens
    # the window with a fresh counter.
    dev.stop()
    dev.start()
    await dev.wait_log_async("pairing locked out")
    await dev.wait_log_async("relay connected")
    await dev.hold_button(500)
    await dev.wait_log_async("pairing window open attempts_left=20")
    assert await controller.pair(dev.device_id, CODE) == dev.public_key
    assert read_state(dev, "attempts.json") == {"failed": 0}


async def test_one_attempt_at_a_time_and_bad_pairing_messages(
    make_device: Callable[..., DeviceProcess], controller: Controller, relay: RelayProcess
) -> None:
    dev = make_device()
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
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
    _, token = await new_account(relay.base)
    other = await Controller(relay.base, token).connect()
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
    await dev.wait_log_async("relay connected")
    device_pub = await controller.pair(dev.device_id, CODE)
    session = await controller.open_session(dev.device_id, device_pub)

    await session.send_app({"t": "unpair", "id": 7})
    assert (await session.wait_for("result", id=7))["ok"] is True
    await dev.wait_log_async("forgetting the controller: unpaired by the controller")
    await dev.wait_log_async("pairing window open attempts_left=20", count=2)
    assert read_state(dev, "pairing.json") == UNPAIRED

    async def released() -> bool:
        return not await owned_devices(relay, controller.token)

    for _ in range(50):
        if await released():
            break
    assert await released()

    # Pair again (the window is open), then forget by holding the button.
    device_pub = await controller.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    await dev.hold_button(1600)
    await dev.wait_log_async("forgetting the controller: factory reset")
    assert read_state(dev, "pairing.json") == UNPAIRED
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
    await dev.wait_log_async("relay connected")
    await dev.wait_log_async("pairing window closed: timeout", within=5)
    with raises_pairing(PairingFailure.NOT_IN_PAIRING_MODE):
        await controller.pair(dev.device_id, CODE)
    await dev.hold_button(500)
    await dev.wait_log_async("pairing window open attempts_left=20", count=2)
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
    await dev.wait_log_async("relay connected")
    await controller.pair(dev.device_id, CODE)
    await dev.wait_log_async("claimed by controller")
    assert len(await owned_devices(relay, controller.token)) == 1
    dev.stop()
    write_plain(dev.state, "pairing.json", UNPAIRED)  # what a factory reset writes
    dev.start()
    await dev.wait_log_async("unpaired but claimed at the relay: releasing")
    for _ in range(50):
        if not await owned_devices(relay, controller.token):
            break
    assert await owned_devices(relay, controller.token) == []
    assert dev.count_log("relay closed 4001") == 0
    assert dev.count_log("relay connected") == 1


# ---------------------------------------------------------------- L1


ATTEMPT_S = 3  # main.py --attempt-seconds: an attempt's slot (30 s in the field)


async def test_l1_a_strangers_pair_starts_cannot_keep_the_owner_out(
    make_device: Callable[..., DeviceProcess], controller: Controller, relay: RelayProcess
) -> None:
    """A stranger (another account) who knows the id sends PAIR_START after PAIR_START; the
    owner, refused `busy`, gets the slot that follows the stranger's, within one attempt
    slot of its first refusal, and pairs. Restarting never renewed the stranger's slot."""
    dev = make_device(args=["--attempt-seconds", str(ATTEMPT_S)])
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    _, token = await new_account(relay.base)
    stranger = await Controller(relay.base, token).connect()
    answers: list[bytes] = []
    holding = asyncio.Event()

    async def loop() -> None:
        # Its whole relay budget (10 PAIR_START per account and device), spread so that
        # it covers the stranger's slot and the owner's after it.
        for _ in range(10):
            await stranger.send(FrameType.PAIR_START, dev.device_id, b"\x01\x01")
            await asyncio.sleep(0.6)

    async def collect() -> None:
        while True:
            answers.append((await stranger.recv((FrameType.PAIR,), within=60)).payload)
            holding.set()

    looping = asyncio.create_task(loop())
    collecting = asyncio.create_task(collect())
    try:
        await asyncio.wait_for(holding.wait(), 10)
        assert answers[0][0] == 0x02  # the stranger holds the slot
        first_busy = None
        refusals: list[PairingFailure] = []
        while True:
            started = time.monotonic()
            try:
                assert await controller.pair(dev.device_id, CODE) == dev.public_key
                break
            except PairingError as err:
                refusals.append(err.failure)
                first_busy = first_busy or started
                # The owner's own relay budget (10 PAIR_START) must last the wait.
                await asyncio.sleep(0.7)
        assert set(refusals) == {PairingFailure.BUSY}, refusals
        assert first_busy is not None, "the owner was never refused: no stranger in the way"
        waited = started - first_busy
        # One slot, plus the owner's retry interval (0.7 s) and some slack.
        assert waited <= ATTEMPT_S + 1.5, waited
        print(f"\nowner refused busy for {waited:.2f} s (attempt slot {ATTEMPT_S} s)")
        await looping
        # Once the owner was refused, the stranger's next starts were refused in turn.
        assert bytes((0x7F, 4)) in [a[:2] for a in answers], [a.hex() for a in answers]
    finally:
        looping.cancel()
        collecting.cancel()
        await stranger.close()
    await dev.wait_log_async("claimed by controller")


async def test_l1_lockout_without_a_button_ends_at_the_next_power_on(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    """A device without a pairing button: a lockout holds for the rest of the boot, and
    the next boot (a power cycle: physical presence) clears it, once per boot. A counter
    below the limit survives a boot; nothing on the wire resets it."""
    dev = make_device(pairing_button=None)
    provision(dev.state, CODE)
    write_plain(dev.state, "attempts.json", {"failed": 19})
    dev.start()
    await dev.wait_log_async("pairing window open attempts_left=1")
    await dev.wait_log_async("relay connected")
    with raises_pairing(PairingFailure.WRONG_CODE):
        await controller.pair(dev.device_id, WRONG)
    await dev.wait_log_async("pairing window closed: failed-attempt limit reached")
    with raises_pairing(PairingFailure.LOCKED_OUT):
        await controller.pair(dev.device_id, CODE)

    for boot in (1, 2):
        # The power cycle: the lockout recorded before this boot is cleared.
        dev.stop()
        dev.start()
        await dev.wait_log_async("pairing lockout cleared at power-on")
        await dev.wait_log_async("pairing window open attempts_left=20")
        await dev.wait_log_async("relay connected")
        assert read_state(dev, "attempts.json") == {"failed": 0}
        if boot == 2:
            break
        # Locked out again in this boot (19 earlier failures, then one): it stays locked
        # until the next power-on, whatever arrives meanwhile.
        dev.stop()
        write_plain(dev.state, "attempts.json", {"failed": 19})
        dev.start()
        await dev.wait_log_async("pairing window open attempts_left=1")  # below: kept
        assert "lockout cleared" not in dev.output()
        await dev.wait_log_async("relay connected")
        with raises_pairing(PairingFailure.WRONG_CODE):
            await controller.pair(dev.device_id, WRONG)
        await dev.wait_log_async("pairing window closed: failed-attempt limit reached")
        with raises_pairing(PairingFailure.LOCKED_OUT):
            await controller.pair(dev.device_id, CODE)
        assert dev.count_log("lockout cleared") == 0
    assert await controller.pair(dev.device_id, CODE) == dev.public_key
