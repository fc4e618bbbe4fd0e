"""Pairing brute force against the real firmware through the real relay, and account
isolation at the relay.

- Wrong setup codes until the device closes its window (locked_out); the right code is
  then refused until a long press of the pairing button reopens the window.
- The relay's PAIR_START limit per device shows as ERROR rate_limited.
- Another account cannot see, pair with or command a device; a device cannot
  authenticate as another device.
"""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import pytest

from homeseal_protocol.envelope import FrameType, RelayError
from homeseal_protocol.errors import PairingFailure
from homeseal_protocol.session import InitiatorSession
from testbed.accounts import new_account
from testbed.endpoints import ROLE_CONTROLLER, ROLE_DEVICE, Controller, Endpoint, open_ws
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess
from tests.firmware.statefiles import read_record, write_plain
from tests.support import raises_pairing

pytestmark = pytest.mark.micropython

CODE = "40961357"
WRONG = ["40961358", "13572468", "20231187", "55551234", "90817263", "31415926", "27182818",
         "16180339"]  # fmt: skip
# Failed attempts already on the device's persistent counter (PROTOCOL §5.3: it survives
# a power cycle). The relay lets 10 PAIR_START through per device before its own limit
# (one more every 30 s), so the last 8 of the device's 20 are made here.
EARLIER_FAILURES = 20 - len(WRONG)


async def test_brute_force_locks_the_device_out(
    relay: RelayProcess, tmp_path: Path, socket_enabled: None
) -> None:
    dev = DeviceProcess(tmp_path / "device", relay.device_url)
    provision(dev.state, CODE)
    write_plain(dev.state, "attempts.json", {"failed": EARLIER_FAILURES})
    dev.start()
    _, token = await new_account(relay.base)
    ctl = await Controller(relay.base, token).connect()
    try:
        await dev.wait_log_async("relay connected")
        for n, code in enumerate(WRONG, 1):
            # The controller sees confirmV fail (the wrong code) and stops; the device
            # counted the attempt durably before answering PAKE1.
            with raises_pairing(PairingFailure.WRONG_CODE):
                await ctl.pair(dev.device_id, code)
            failed = read_record(dev.state, "attempts.json")["failed"]  # type: ignore[index]
            assert failed == EARLIER_FAILURES + n
        await dev.wait_log_async("pairing window closed")
        # The window is closed: the right code is refused as well.
        with raises_pairing(PairingFailure.LOCKED_OUT):
            await ctl.pair(dev.device_id, CODE)
        assert read_record(dev.state, "pairing.json") == {"controller_id": None}
        # Physical access reopens it (and resets the counter): now the code works.
        await dev.hold_button(500)
        await dev.wait_log_async("pairing window open attempts_left=20")
        device_pub = await ctl.pair(dev.device_id, CODE)
        assert device_pub == dev.public_key
        await dev.wait_log_async("claimed by controller")
    finally:
        await ctl.close()
        dev.stop()


async def test_relay_limits_pair_start_per_device(
    relay: RelayProcess, socket_enabled: None
) -> None:
    """A stand-in device (its key, authenticated) that never answers: the relay still
    counts PAIR_START frames aimed at it and refuses the 11th."""
    async with aiohttp.ClientSession() as http:
        device = Endpoint(ROLE_DEVICE)
        link = await open_ws(http, relay.device_url)
        await link.send_raw(device.respond(link.challenge))
        assert (await link.recv()).type == FrameType.AUTH_OK
        _, token = await new_account(relay.base)
        ctl = await Controller(relay.base, token).connect()
        try:
            for _ in range(10):
                await ctl.send(FrameType.PAIR_START, device.id, b"\x01\x01")
                assert (await link.recv()).type == FrameType.PAIR_START
            await ctl.send(FrameType.PAIR_START, device.id, b"\x01\x01")
            _, peer, payload = await ctl.recv((FrameType.ERROR,), 5)
            assert (peer, payload) == (device.id, bytes((RelayError.RATE_LIMITED,)))
            await link.expect_silence(0.3)
        finally:
            await ctl.close()
            await link.close()


async def test_other_account_cannot_see_pair_or_command(
    relay: RelayProcess, tmp_path: Path, socket_enabled: None
) -> None:
    dev = DeviceProcess(tmp_path / "device", relay.device_url)
    provision(dev.state, CODE)
    dev.start()
    _, owner_token = await new_account(relay.base)
    _, other_token = await new_account(relay.base)
    owner = await Controller(relay.base, owner_token).connect()
    other = await Controller(relay.base, other_token).connect()
    try:
        await dev.wait_log_async("relay connected")
        device_pub = await owner.pair(dev.device_id, CODE)
        await dev.wait_log_async("claimed by controller")
        s = await owner.open_session(dev.device_id, device_pub)

        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"{relay.base}/api/v1/devices", headers={"Authorization": f"Bearer {other_token}"}
            ) as r:
                assert r.status == 200
                assert (await r.json())["devices"] == []
            async with http.delete(
                f"{relay.base}/api/v1/devices/{_text_id(dev.device_id)}",
                headers={"Authorization": f"Bearer {other_token}"},
            ) as r:
                assert r.status == 404
        assert not [
            f for f in other.drain() if f[0] == FrameType.PRESENCE and f[1] == dev.device_id
        ]

        # Pairing with a claimed device of another account: refused by the relay.
        await other.send(FrameType.PAIR_START, dev.device_id, b"\x01\x01")
        _, _, payload = await other.recv((FrameType.ERROR,), 5)
        assert payload == bytes((RelayError.NOT_PERMITTED,))
        # Commanding it: a SESSION frame (a HANDSHAKE1 with the other controller's key).
        hs1 = InitiatorSession(other.key, device_pub, dev.device_id, other.id).start()
        await other.send(FrameType.SESSION, dev.device_id, hs1)
        _, _, payload = await other.recv((FrameType.ERROR,), 5)
        assert payload == bytes((RelayError.NOT_PERMITTED,))
        assert dev.count_log("session open") == 1  # the owner's only
        assert (await dev.pins())["5"] == 0
        # The owner's session is untouched.
        assert (await s.command("relay1", "turn_on"))["ok"] is True
        assert (await dev.pins())["5"] == 1
    finally:
        await owner.close()
        await other.close()
        dev.stop()


def _text_id(ident: bytes) -> str:
    return base64.b32encode(ident).decode().lower().rstrip("=")


async def test_device_cannot_pose_as_another(relay: RelayProcess, socket_enabled: None) -> None:
    async with aiohttp.ClientSession() as http:
        victim, impostor = Endpoint(ROLE_DEVICE), Endpoint(ROLE_DEVICE)
        genuine = await open_ws(http, relay.device_url)
        await genuine.send_raw(victim.respond(genuine.challenge))
        assert (await genuine.recv()).type == FrameType.AUTH_OK
        # Its own valid proof under the victim's id: the id does not match the key.
        link = await open_ws(http, relay.device_url)
        forged = impostor.respond(link.challenge)
        await link.send_raw(forged[:1] + victim.id + forged[11:])
        await link.expect_close(4001)
        # The victim's key with a MAC it cannot compute (no private key).
        link = await open_ws(http, relay.device_url)
        await link.send_raw(bytes((FrameType.AUTH_RESPONSE,)) + victim.id + victim.pub + bytes(32))
        await link.expect_close(4001)
        # A recorded response of the victim, replayed against a fresh challenge.
        recorded = victim.respond(genuine.challenge)
        link = await open_ws(http, relay.device_url)
        await link.send_raw(recorded)
        await link.expect_close(4001)
        # The genuine connection was never replaced.
        await genuine.expect_silence(0.2)
        await genuine.close()


async def test_controller_id_stays_with_its_account(
    relay: RelayProcess, socket_enabled: None
) -> None:
    """Another account presenting a controller's key (a copied HA key) is refused."""
    _, owner_token = await new_account(relay.base)
    _, other_token = await new_account(relay.base)
    owner = await Controller(relay.base, owner_token).connect()
    await owner.close()
    async with aiohttp.ClientSession() as http:
        thief = Endpoint(ROLE_CONTROLLER, owner.key)
        link = await open_ws(http, relay.ws_base + "/ws/controller", other_token)
        await link.send_raw(thief.respond(link.challenge))
        await link.expect_close(4001)
