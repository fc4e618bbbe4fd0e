"""Ownership hijack from the device's plain ws:// link (SECURITY.md A1/A3).

The attacker sits on the device's link (the proxy) and has an account at the relay.
It injects RELEASE and CLAIM frames into the device's authenticated connection to hand
the device to its own account. CLAIM and RELEASE carry `seq ‖ HMAC(k_ctl, …)` under a
key derived from the §4 DH (PROTOCOL §4.1), which never crosses the link: every
injected control frame, forged or replayed from an earlier connection, closes the
device's connection with 4001, ownership stays with the real owner, the device comes
back within its normal backoff, and the owner keeps control.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from homeseal_protocol.envelope import FrameType, RelayError
from testbed.accounts import new_account
from testbed.endpoints import Controller
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess

from .proxy import DEVICE, UP, Mitm
from .test_mitm import CODE, Setup, setup  # noqa: F401

pytestmark = pytest.mark.micropython

CLAIM, RELEASE = FrameType.CLAIM, FrameType.RELEASE


async def _devices(relay: RelayProcess, token: str) -> list[str]:
    url, auth = f"{relay.base}/api/v1/devices", {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=auth) as r:
        assert r.status == 200
        return [d["device_id"] for d in (await r.json())["devices"]]


async def _inject_refused(mitm: Mitm, dev: DeviceProcess, frame: bytes, n: int) -> None:
    """Inject `frame` up the device's live connection: the relay closes it with 4001 and
    the device, on its own, is connected again within its capped backoff."""
    await mitm.inject(DEVICE, dev.device_id, UP, frame)
    await dev.wait_log_async("relay closed 4001", count=n)
    # The first retries come after at most 1 s, 2 s, … (§2.1), never 15 minutes.
    await dev.wait_log_async("relay connected", count=n + 1, within=10)


async def test_link_attacker_cannot_move_ownership(setup: Setup, relay: RelayProcess) -> None:  # noqa: F811
    su = setup
    dev_id = su.dev.device_id
    owner_token = su.ctl.token
    owner_view = await _devices(relay, owner_token)
    assert len(owner_view) == 1
    # The device's own CLAIM (seq 1 of its first connection), captured on the link.
    captured = [f for f in su.mitm.frames(DEVICE, UP, dev_id) if f[0] == CLAIM]
    assert len(captured) == 1, captured
    assert len(captured[0]) == 11 + 4 + 32, captured
    _, thief_token = await new_account(relay.base)
    thief = await Controller(relay.base, thief_token).connect()
    try:
        # 1. RELEASE without a mac, then with the captured CLAIM's seq and mac.
        await _inject_refused(su.mitm, su.dev, bytes((RELEASE,)) + bytes(10), 1)
        assert await _devices(relay, owner_token) == owner_view
        await _inject_refused(su.mitm, su.dev, bytes((RELEASE,)) + captured[0][1:], 2)
        assert await _devices(relay, owner_token) == owner_view
        # 2. The thief cannot become a pairing peer of the still-owned device.
        await thief.send(FrameType.PAIR_START, dev_id, b"\x01\x01")
        _, _, payload = await thief.recv((FrameType.ERROR,), 5)
        assert payload == bytes((RelayError.NOT_PERMITTED,))
        # 3. CLAIM naming the thief, with the captured frame's seq ‖ mac. (Bare CLAIMs:
        # the next test; whole-frame replays into a new connection: tests/relay.)
        await _inject_refused(su.mitm, su.dev, bytes((CLAIM,)) + thief.id + captured[0][11:], 3)
        assert await _devices(relay, thief_token) == []
        assert await _devices(relay, owner_token) == owner_view
        # The owner still reaches and commands the device.
        await su.recover()
        assert "Traceback" not in su.dev.output()
    finally:
        await thief.close()


async def test_link_attacker_cannot_claim_an_unclaimed_device(
    relay: RelayProcess, mitm: Mitm, tmp_path: Path
) -> None:
    """A device whose pairing window is open: the thief's controller may legitimately
    start pairing (it becomes a pairing peer) but does not know the setup code. An
    injected CLAIM naming it is refused (4001): only the device's authenticated CLAIM,
    sent after a successful pairing, claims. The real owner then pairs as usual."""
    dev = DeviceProcess(tmp_path / "device", mitm.ws_device)
    provision(dev.state, CODE)
    dev.start()
    _, thief_token = await new_account(relay.base)
    _, owner_token = await new_account(relay.base)
    thief = await Controller(relay.base, thief_token).connect()
    owner = await Controller(relay.base, owner_token).connect()
    try:
        await dev.wait_log_async("relay connected")
        await thief.send(FrameType.PAIR_START, dev.device_id, b"\x01\x01")
        ftype, _, _ = await thief.recv((FrameType.PAIR, FrameType.ERROR), 10)
        assert ftype == FrameType.PAIR  # the device answered: the thief is a pairing peer
        # It gives up its attempt (no code), staying a pairing peer at the relay.
        await thief.send(FrameType.PAIR, dev.device_id, bytes((0x7F, 2, 0)))
        await dev.wait_log_async("pairing attempt ended by the controller")
        await _inject_refused(mitm, dev, bytes((CLAIM,)) + thief.id, 1)
        assert await _devices(relay, thief_token) == []
        # Again on the new connection, with a payload of the right shape this time.
        await thief.send(FrameType.PAIR_START, dev.device_id, b"\x01\x01")
        ftype, _, _ = await thief.recv((FrameType.PAIR, FrameType.ERROR), 10)
        assert ftype == FrameType.PAIR
        await thief.send(FrameType.PAIR, dev.device_id, bytes((0x7F, 2, 0)))
        await dev.wait_log_async("pairing attempt ended by the controller", count=2)
        await _inject_refused(mitm, dev, bytes((CLAIM,)) + thief.id + (1).to_bytes(4, "big")
                              + bytes(32), 2)  # fmt: skip
        assert await _devices(relay, thief_token) == []
        # The real owner, who has the code, pairs and claims as usual.
        device_pub = await owner.pair(dev.device_id, CODE)
        await dev.wait_log_async("claimed by controller")
        assert len(await _devices(relay, owner_token)) == 1
        assert await _devices(relay, thief_token) == []
        s = await owner.open_session(dev.device_id, device_pub)
        assert (await s.command("relay1", "turn_on"))["ok"] is True
        assert (await dev.pins())["5"] == 1
    finally:
        await thief.close()
        await owner.close()
        dev.stop()
