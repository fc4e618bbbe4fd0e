"""A cluster of relay processes on PostgreSQL and Redis: traffic between endpoints on
different nodes (the real firmware and the testbed controller), account isolation,
takeover, revocation and rate limits across nodes (docs/RELAY.md, "Several nodes")."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiohttp
import pytest

from homeseal_protocol.ids import format_id
from testbed.accounts import new_account
from testbed.endpoints import (
    ERROR,
    PAIR_START,
    PRESENCE,
    REMOVED,
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Controller,
    Endpoint,
    connect,
    pair_and_claim,
)
from testbed.firmware import DeviceProcess

from .conftest import FAST, ClusterFactory, cross_pair, firmware_session

pytestmark = pytest.mark.slow

PASSWORD = "a perfectly fine passphrase"
NOT_PERMITTED = b"\x02"
RATE_LIMITED = b"\x03"


async def test_device_and_controller_on_different_nodes_exchange_1000_commands(
    make_cluster: ClusterFactory, make_device: Callable[..., DeviceProcess]
) -> None:
    # A command costs the device two frames (result, state): back to back, 1,000 of
    # them exceed its default budget of 100 frames/s, which is not what this measures.
    cluster = make_cluster(args=(*FAST, "--device-frame-rate", "2000"))
    a, b = cluster[0], cluster[1]
    account = await new_account(b.base)
    ctl = await Controller(b.base, account.token).connect()
    try:
        _, _, session = await firmware_session(make_device, a.device_url, ctl)
        started = time.monotonic()
        for i in range(1000):
            result = await session.command("relay1", "turn_on" if i % 2 == 0 else "turn_off")
            assert result["ok"], result
        elapsed = time.monotonic() - started
        print(f"1,000 commands across nodes in {elapsed:.1f} s")
    finally:
        await ctl.close()


async def test_accounts_stay_isolated_across_nodes(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(args=FAST)
    async with aiohttp.ClientSession() as http:
        controller, ctl, device, dev, _ = await cross_pair(http, cluster[0], cluster[1])
        stranger = await new_account(cluster[1].base)
        # The stranger, on a third node, reaches neither the device nor the controller.
        spy = Endpoint(ROLE_CONTROLLER)
        other = await connect(http, cluster[2].ws_base, spy, stranger.token)
        await other.send(SESSION, device.id, b"\x01hello")
        await other.expect(ERROR, device.id, NOT_PERMITTED)
        await dev.expect_silence(0.3)
        # Nor can the stranger's PAIR reach it; the owner's traffic flows.
        await other.send(0x11, device.id, b"\x01")
        await other.expect(ERROR, device.id, NOT_PERMITTED)
        await ctl.send(SESSION, device.id, b"\x03mine")
        await dev.expect(SESSION, controller.id, b"\x03mine")
        await dev.send(SESSION, spy.id, b"\x03leak")
        await dev.expect(ERROR, spy.id, NOT_PERMITTED)
        await other.expect_silence(0.3)
        for link in (ctl, dev, other):
            await link.close()


async def test_a_second_connection_on_another_node_replaces_the_first(
    make_cluster: ClusterFactory,
) -> None:
    cluster = make_cluster(args=FAST)
    async with aiohttp.ClientSession() as http:
        controller, ctl, device, first, owner = await cross_pair(http, cluster[0], cluster[1])
        await ctl.send(SESSION, device.id, b"\x03one")
        await first.expect(SESSION, controller.id, b"\x03one")
        started = time.monotonic()
        second = await connect(http, cluster[2].ws_base, Endpoint(ROLE_DEVICE, device.private))
        await first.expect_close(4002, wait_s=1.0)
        assert time.monotonic() - started < 1.5  # within a second of AUTH_OK
        # Frames follow the new connection (the sender looks it up again).
        await ctl.send(SESSION, device.id, b"\x03two")
        await second.expect(SESSION, controller.id, b"\x03two")
        # The controller saw no offline in between (a repeated online at most).
        seen = []
        while True:
            try:
                frame = await ctl.recv(0.3)
            except TimeoutError:
                break
            seen.append(frame)
        assert all(f.payload == b"\x01" for f in seen if f.type == PRESENCE), seen
        # A controller takeover crosses nodes too.
        again = await connect(
            http, cluster[1].ws_base, Endpoint(ROLE_CONTROLLER, controller.private), owner.token
        )
        await ctl.expect_close(4002, wait_s=1.0)
        await again.expect(PRESENCE, device.id, b"\x01")  # its device, on another node
        await second.send(SESSION, controller.id, b"\x03back")
        await again.expect(SESSION, device.id, b"\x03back")
        for link in (second, again):
            await link.close()


async def test_account_events_cross_nodes(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(args=FAST)
    async with aiohttp.ClientSession() as http:
        _, ctl, device, dev, owner = await cross_pair(http, cluster[1], cluster[2], PASSWORD)
        # Removing the device on node 0: REMOVED reaches it on node 2, routes drop.
        async with http.delete(
            cluster[0].base + f"/api/v1/devices/{format_id(device.id)}",
            headers={"Authorization": f"Bearer {owner.token}"},
        ) as resp:
            assert resp.status == 204
        await dev.expect(REMOVED)
        await ctl.expect(PRESENCE, device.id, b"\x00")
        await ctl.send(SESSION, device.id, b"\x03gone")
        await ctl.expect(ERROR, device.id, NOT_PERMITTED)
        # A logout on node 0 closes the token's controller on node 1 (4007).
        async with http.delete(
            cluster[0].base + "/api/v1/tokens/current",
            headers={"Authorization": f"Bearer {owner.token}"},
        ) as resp:
            assert resp.status == 204
        await ctl.expect_close(4007, wait_s=2.0)
        # A password change on node 2 closes the account's controllers on node 0 and 1.
        token = await _login(http, cluster[2].base, owner.username, PASSWORD)
        links = [
            await connect(http, node.ws_base, Endpoint(ROLE_CONTROLLER), token)
            for node in (cluster[0], cluster[1])
        ]
        async with http.post(
            cluster[2].base + "/api/v1/account/password",
            json={"current_password": PASSWORD, "new_password": PASSWORD + " changed"},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 204
        for link in links:
            await link.expect_close(4007, wait_s=2.0)
        # Deleting the account on node 0 closes its controller on node 1 (4007) and
        # unclaims its device on node 2, which hears REMOVED.
        token = await _login(http, cluster[1].base, owner.username, PASSWORD + " changed")
        late = Endpoint(ROLE_CONTROLLER)
        last = await connect(http, cluster[1].ws_base, late, token)
        other = Endpoint(ROLE_DEVICE)
        odev = await connect(http, cluster[2].ws_base, other)
        await pair_and_claim(last, late.id, odev, other.id)
        async with http.delete(
            cluster[0].base + "/api/v1/account",
            json={"password": PASSWORD + " changed"},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 204
        await last.expect_close(4007, wait_s=2.0)
        await odev.expect(REMOVED)
        for link in (dev, odev):
            await link.close()


async def _login(http: aiohttp.ClientSession, base: str, username: str, password: str) -> str:
    async with http.post(
        base + "/api/v1/tokens", json={"username": username, "password": password}
    ) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["token"])


async def test_rate_limits_hold_across_nodes(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(args=(*FAST, "--account-frame-rate", "50"))
    async with aiohttp.ClientSession() as http:
        owner = await new_account(cluster[0].base)
        # Login per username: 5 attempts, spread over the three nodes, then 429 on any.
        statuses = []
        for i in range(7):
            async with http.post(
                cluster[i % 3].base + "/api/v1/tokens",
                json={"username": owner.username, "password": "wrong password here"},
            ) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) >= 1
        assert statuses[:4] == [401] * 4, statuses  # the first login was new_account's
        assert statuses[4:] == [429] * 3, statuses
        # PAIR_START per (account, device): 10, whichever node the controllers are on.
        stranger = await new_account(cluster[1].base)
        device = Endpoint(ROLE_DEVICE)
        dev = await connect(http, cluster[0].ws_base, device)
        ctls = [
            await connect(http, node.ws_base, Endpoint(ROLE_CONTROLLER), stranger.token)
            for node in cluster.nodes
        ]
        passed = refused = 0
        for i in range(15):
            link = ctls[i % 3]
            await link.send(PAIR_START, device.id, b"\x01\x01")
            try:
                frame = await dev.recv(1.0)
                assert frame.type == PAIR_START
                passed += 1
            except TimeoutError:
                await link.expect(ERROR, device.id, RATE_LIMITED)
                refused += 1
        assert (passed, refused) == (10, 5)
        # The frame budget an account's controllers share (here 50/s, bursts of 100):
        # controllers on two nodes, each offering 200 frames/s, together get one budget
        # (100 + 50/s until it is spent, plus at most two leases of 13 per node: ≈ 115 to
        # 170 frames before both are closed), not one per node (≈ 133 each, 266 in all).
        flood_owner = await new_account(cluster[2].base)
        c0, c1 = Endpoint(ROLE_CONTROLLER), Endpoint(ROLE_CONTROLLER)
        l0 = await connect(http, cluster[0].ws_base, c0, flood_owner.token)
        l1 = await connect(http, cluster[1].ws_base, c1, flood_owner.token)
        target = Endpoint(ROLE_DEVICE)
        tdev = await connect(http, cluster[2].ws_base, target)
        await pair_and_claim(l0, c0.id, tdev, target.id)
        for _ in range(30):  # 1.5 s
            for link in (l0, l1):
                for _ in range(10):
                    with contextlib.suppress(ConnectionError):
                        await link.send(SESSION, target.id, b"\x03" + bytes(50))
            await asyncio.sleep(0.05)
        closes = []
        for link in (l0, l1):
            try:
                await link.expect_close(4005, wait_s=2.0)
                closes.append(4005)
            except (AssertionError, TimeoutError):
                pass
        received = 0
        while True:
            try:
                frame = await tdev.recv(0.5)
            except TimeoutError:
                break
            received += frame.type == SESSION
        print(f"account frame budget across two nodes: {received} frames passed")
        assert 90 <= received < 220, received
        assert closes == [4005, 4005], closes
        for link in (dev, tdev, *ctls):
            await link.close()


async def test_presence_and_device_listing_across_nodes(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(args=FAST)
    async with aiohttp.ClientSession() as http:
        _, ctl, device, dev, owner = await cross_pair(http, cluster[0], cluster[1])
        # A controller that connects later, on a third node, hears the device is online.
        late = await connect(http, cluster[2].ws_base, Endpoint(ROLE_CONTROLLER), owner.token)
        await late.expect(PRESENCE, device.id, b"\x01")
        async with http.get(
            cluster[2].base + "/api/v1/devices", headers={"Authorization": f"Bearer {owner.token}"}
        ) as resp:
            listing = await resp.json()
        assert [d["online"] for d in listing["devices"]] == [True]
        await dev.close()
        await ctl.expect(PRESENCE, device.id, b"\x00")
        await late.expect(PRESENCE, device.id, b"\x00")
        for link in (ctl, late):
            await link.close()
