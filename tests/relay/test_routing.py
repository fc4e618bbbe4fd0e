"""Routing rules (PROTOCOL §3.2): pairing, claims, isolation, presence, removal."""

from __future__ import annotations

import asyncio

from homeseal_protocol.ids import format_id
from relay_server.config import RateLimit
from testbed.endpoints import (
    CLAIM,
    CLAIMED,
    ERROR,
    PAIR,
    PAIR_START,
    PRESENCE,
    RELEASE,
    REMOVED,
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Endpoint,
    connect,
    open_ws,
    pair_and_claim,
)

from .conftest import PASSWORD, Relay, RelayFactory, claimed_pair, eventually

PEER_OFFLINE, NOT_PERMITTED, RATE_LIMITED, NOT_CLAIMABLE = b"\x01", b"\x02", b"\x03", b"\x04"


def owner_of(relay: Relay, device_id: bytes) -> int | None:
    rows = relay.rows("SELECT owner_account_id FROM devices WHERE device_id = ?", device_id)
    return None if not rows else rows[0][0]


async def test_pairing_flow_claims_device(relay: Relay) -> None:
    token = await relay.account("pairer")
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    assert dev.auth_flags == b"\x00"
    # Before the claim only pairing traffic passes.
    await ctl.send(SESSION, device.id, b"\x01hs1")
    await ctl.expect(ERROR, device.id, NOT_PERMITTED)
    await dev.send(SESSION, controller.id, b"\x02hs2")
    await dev.expect(ERROR, controller.id, NOT_PERMITTED)
    # PAIR before PAIR_START is refused in both directions.
    await ctl.send(PAIR, device.id, b"\x03")
    await ctl.expect(ERROR, device.id, NOT_PERMITTED)
    await dev.send(PAIR, controller.id, b"\x02")
    await dev.expect(ERROR, controller.id, NOT_PERMITTED)

    payload = bytes(range(256)) * 3  # opaque bytes go through untouched
    await ctl.send(PAIR_START, device.id, payload)
    await dev.expect(PAIR_START, controller.id, payload)
    await pair_and_claim(ctl, controller.id, dev, device.id)
    assert owner_of(relay, device.id) is not None
    # Now sessions flow both ways.
    await ctl.send(SESSION, device.id, b"\x01" + bytes(48))
    await dev.expect(SESSION, controller.id, b"\x01" + bytes(48))
    await dev.send(SESSION, controller.id, b"\x02" + bytes(48))
    await ctl.expect(SESSION, device.id, b"\x02" + bytes(48))
    # A reconnecting device learns it is claimed; its owner sees it come and go.
    await dev.close()
    await ctl.expect(PRESENCE, device.id, b"\x00")
    dev = await connect(relay.http, relay.ws_base, device)
    assert dev.auth_flags == b"\x01"
    await ctl.expect(PRESENCE, device.id, b"\x01")
    await dev.close()
    await ctl.close()


async def test_controller_can_never_claim(relay: Relay) -> None:
    token = await relay.account("claimer")
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    await ctl.send(PAIR_START, device.id, b"\x01\x01")
    await dev.expect(PAIR_START, controller.id)
    await ctl.send(CLAIM, device.id)
    await ctl.expect_close(4000)
    assert owner_of(relay, device.id) is None
    await dev.close()


async def test_claim_needs_pairing_peer(relay: Relay) -> None:
    token_a = await relay.account("peer-a")
    token_b = await relay.account("peer-b")
    controller_a, ctl_a = await relay.controller(token_a)
    controller_b, ctl_b = await relay.controller(token_b)
    device, dev = await relay.device()
    # B never started pairing: a claim naming B is refused, and so is an unknown id.
    await ctl_a.send(PAIR_START, device.id, b"\x01\x01")
    await dev.expect(PAIR_START, controller_a.id)
    for target in (controller_b.id, bytes(10)):
        await dev.send_control(CLAIM, target)
        await dev.expect(ERROR, target, NOT_CLAIMABLE)
    assert owner_of(relay, device.id) is None
    await ctl_b.expect_silence(0.1)
    # A claim without its seq ‖ mac is not the device's (§4.1).
    await dev.send(CLAIM, controller_a.id, b"x")
    await dev.expect_close(4001)
    assert owner_of(relay, device.id) is None
    for link in (ctl_a, ctl_b):
        await link.close()


async def test_claim_survives_a_reconnect_within_the_pairing_window(relay: Relay) -> None:
    """A CLAIM lost with the connection (dropped by a link attacker, or a network cut
    between PAIR_DONE and CLAIM) can be sent again after the device reconnects."""
    token = await relay.account("reclaim")
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    await ctl.send(PAIR_START, device.id, b"\x01\x01")
    await dev.expect(PAIR_START, controller.id)
    await dev.close()  # gone before its CLAIM reached the relay
    _, dev = await relay.device(device)
    await dev.send_control(CLAIM, controller.id)
    await dev.expect(CLAIMED, controller.id, b"")
    assert owner_of(relay, device.id) is not None
    # Remembered for that device only: another device cannot claim through it.
    _, dev2 = await relay.device()
    await dev2.send_control(CLAIM, controller.id)
    await dev2.expect(ERROR, controller.id, NOT_CLAIMABLE)
    for link in (ctl, dev, dev2):
        await link.close()


async def test_isolation_between_accounts(relay: Relay) -> None:
    a = await claimed_pair(relay, "isolated-a")
    b = await claimed_pair(relay, "isolated-b")
    # B's controller cannot reach A's device by any frame type …
    for frame_type in (SESSION, PAIR, PAIR_START):
        await b.ctl.send(frame_type, a.device.id, b"\x01intrude")
        await b.ctl.expect(ERROR, a.device.id, NOT_PERMITTED)
    # … nor can A's device reach B's controller.
    for frame_type in (SESSION, PAIR):
        await a.dev.send(frame_type, b.controller.id, b"\x03leak")
        await a.dev.expect(ERROR, b.controller.id, NOT_PERMITTED)
    await a.dev.expect_silence(0.1)
    # B hears nothing about A's device coming and going.
    await a.dev.close()
    await a.ctl.expect(PRESENCE, a.device.id, b"\x00")
    await b.ctl.expect_silence(0.2)
    await b.assert_routes()
    # B's device list does not show A's device; B cannot remove it.
    status, data, _ = await relay.request("GET", "/api/v1/devices", b.token)
    assert [d["device_id"] for d in data["devices"]] == [format_id(b.device.id)]
    status, _, _ = await relay.request(
        "DELETE", f"/api/v1/devices/{format_id(a.device.id)}", b.token
    )
    assert status == 404
    assert owner_of(relay, a.device.id) is not None


async def test_peer_offline(relay: Relay) -> None:
    pair = await claimed_pair(relay, "lonely")
    ghost = Endpoint(ROLE_DEVICE)
    for frame_type in (SESSION, PAIR, PAIR_START):
        await pair.ctl.send(frame_type, ghost.id, b"\x01")
        await pair.ctl.expect(ERROR, ghost.id, PEER_OFFLINE)
    await pair.dev.send(SESSION, bytes(10), b"\x01")
    await pair.dev.expect(ERROR, bytes(10), PEER_OFFLINE)


async def test_pair_start_rate_limits(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(
        limits={
            "pair_start_per_account_device": RateLimit(1 / 60, 2),
            "pair_start_per_account": RateLimit(1 / 60, 3),
        }
    )
    token = await relay.account("eager")
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    for _ in range(2):
        await ctl.send(PAIR_START, device.id, b"\x01\x01")
        await dev.expect(PAIR_START, controller.id)
    await ctl.send(PAIR_START, device.id, b"\x01\x01")
    await ctl.expect(ERROR, device.id, RATE_LIMITED)
    await dev.expect_silence(0.1)
    # Per account: one more start to another device passes, then the account is limited.
    other, dev2 = await relay.device()
    await ctl.send(PAIR_START, other.id, b"\x01\x01")
    await dev2.expect(PAIR_START, controller.id)
    third, dev3 = await relay.device()
    await ctl.send(PAIR_START, third.id, b"\x01\x01")
    await ctl.expect(ERROR, third.id, RATE_LIMITED)
    for link in (ctl, dev, dev2, dev3):
        await link.close()


async def test_pairing_an_owned_device_by_another_account(relay: Relay) -> None:
    a = await claimed_pair(relay, "first-owner")
    token_b = await relay.account("second-owner")
    controller_b, ctl_b = await relay.controller(token_b)
    await ctl_b.send(PAIR_START, a.device.id, b"\x01\x01")
    await ctl_b.expect(ERROR, a.device.id, NOT_PERMITTED)
    # After a RELEASE (the device forgot its controller) anyone may pair it.
    await a.dev.send_control(RELEASE)
    await a.ctl.expect(PRESENCE, a.device.id, b"\x00")
    assert owner_of(relay, a.device.id) is None
    await a.dev.send(SESSION, a.controller.id, b"\x03")
    await a.dev.expect(ERROR, a.controller.id, NOT_PERMITTED)
    await pair_and_claim(ctl_b, controller_b.id, a.dev, a.device.id)
    await a.ctl.send(SESSION, a.device.id, b"\x03")
    await a.ctl.expect(ERROR, a.device.id, NOT_PERMITTED)
    await ctl_b.close()


async def test_remove_device_tells_device_and_drops_routes(relay: Relay) -> None:
    pair = await claimed_pair(relay, "remover")
    status, _, _ = await relay.request(
        "DELETE", f"/api/v1/devices/{format_id(pair.device.id)}", pair.token
    )
    assert status == 204
    await pair.dev.expect(REMOVED, bytes(10), b"")
    await pair.ctl.expect(PRESENCE, pair.device.id, b"\x00")
    await pair.ctl.send(SESSION, pair.device.id, b"\x03")
    await pair.ctl.expect(ERROR, pair.device.id, NOT_PERMITTED)
    await pair.dev.send(SESSION, pair.controller.id, b"\x03")
    await pair.dev.expect(ERROR, pair.controller.id, NOT_PERMITTED)
    # The old pairing peer cannot slip a claim through either.
    await pair.dev.send_control(CLAIM, pair.controller.id)
    await pair.dev.expect(ERROR, pair.controller.id, NOT_CLAIMABLE)
    status, data, _ = await relay.request("GET", "/api/v1/devices", pair.token)
    assert data == {"devices": []}
    assert owner_of(relay, pair.device.id) is None


async def test_presence_for_late_controller(relay: Relay) -> None:
    pair = await claimed_pair(relay, "late")
    second, ctl2 = await relay.controller(pair.token)
    await ctl2.expect(PRESENCE, pair.device.id, b"\x01")
    # Devices reach every controller of the owner account.
    await pair.dev.send(SESSION, second.id, b"\x03two")
    await ctl2.expect(SESSION, pair.device.id, b"\x03two")
    await ctl2.close()


async def test_logout_closes_controller(relay: Relay) -> None:
    pair = await claimed_pair(relay, "leaver")
    other = await relay.login("leaver")
    _, ctl2 = await relay.controller(other)
    await ctl2.expect(PRESENCE)
    status, _, _ = await relay.request("DELETE", "/api/v1/tokens/current", pair.token)
    assert status == 204
    await pair.ctl.expect_close(4007)
    await ctl2.expect_silence(0.1)  # another token's connection stays
    await ctl2.close()


async def test_password_change_closes_controllers(relay: Relay) -> None:
    pair = await claimed_pair(relay, "changer")
    status, _, _ = await relay.request(
        "POST",
        "/api/v1/account/password",
        pair.token,
        json={"current_password": PASSWORD, "new_password": "brand new passphrase"},
    )
    assert status == 204
    await pair.ctl.expect_close(4007)


async def test_account_deletion_releases_devices(relay: Relay) -> None:
    pair = await claimed_pair(relay, "deleter")
    status, _, _ = await relay.request(
        "DELETE", "/api/v1/account", pair.token, json={"password": PASSWORD}
    )
    assert status == 204
    await pair.ctl.expect_close(4007)
    await pair.dev.expect(REMOVED)
    assert owner_of(relay, pair.device.id) is None


async def test_token_expiry_closes_controller(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(token_lifetime_s=1)
    token = await relay.account("ephemeral")
    _, ctl = await relay.controller(token)
    await ctl.expect_close(4007, wait_s=4)


async def test_replacement(relay: Relay) -> None:
    pair = await claimed_pair(relay, "replacer")
    newer = await connect(relay.http, relay.ws_base, pair.device)
    assert newer.auth_flags == b"\x01"
    await pair.dev.expect_close(4002)
    await pair.ctl.expect(PRESENCE, pair.device.id, b"\x01")
    pair.dev = newer
    await pair.assert_routes()
    # Same for a controller.
    newer_ctl = await connect(relay.http, relay.ws_base, pair.controller, pair.token)
    await pair.ctl.expect_close(4002)
    await newer_ctl.expect(PRESENCE, pair.device.id, b"\x01")
    pair.ctl = newer_ctl
    await pair.assert_routes()
    await asyncio.sleep(0)
    assert len(relay.router.registry.devices) == 1
    assert len(relay.router.registry.controllers) == 1


async def test_connection_cap_per_account(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(limits={"connections_per_account": 2})
    token = await relay.account("crowded")
    _, first = await relay.controller(token)
    _, second = await relay.controller(token)
    third = await open_ws(relay.http, relay.ws_base + "/ws/controller", token)
    await third.send_raw(Endpoint(ROLE_CONTROLLER).respond(third.challenge))
    await third.expect_close(4006)
    await first.close()
    await eventually(lambda: len(relay.router.registry.controllers) == 1)
    _, fourth = await relay.controller(token)
    assert (await fourth.expect_silence()) is None
    for link in (second, fourth):
        await link.close()
