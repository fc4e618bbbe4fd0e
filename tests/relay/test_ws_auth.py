"""Endpoint authentication (PROTOCOL §4) and the upgrade: impersonation attempts and
everything that can go wrong before AUTH_OK."""

from __future__ import annotations

import aiohttp
import pytest

from homeseal_protocol.ids import endpoint_id
from homeseal_protocol.relay_auth import compute_mac as auth_mac
from testbed.endpoints import (
    AUTH_OK,
    AUTH_RESPONSE,
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Endpoint,
    connect,
    open_ws,
)

from .conftest import Relay, RelayFactory, claimed_pair

# X25519 points of small order (and non-canonical encodings of them): with any of
# them the shared secret is all zero (RFC 7748 §6.1; the list libsodium refuses).
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


async def failures(relay: Relay, role: str) -> int:
    return int(relay.router.stats.auth_failures.get(role, 0))


async def test_device_auth_registers_device(relay: Relay) -> None:
    device = Endpoint(ROLE_DEVICE)
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    _status, info, _ = await relay.request("GET", "/api/v1/relay")
    assert link.challenge[1:11] == bytes(10)
    assert link.challenge[11:43].hex() == info["relay_key"]
    await link.send_raw(device.respond(link.challenge))
    await link.expect(AUTH_OK, bytes(10), b"\x00")  # unclaimed
    assert link.ws.protocol == "homeseal.v1"
    row = relay.rows("SELECT public_key, owner_account_id FROM devices")[0]
    assert row == (device.pub, None)
    await link.close()


async def test_challenges_are_fresh(relay: Relay) -> None:
    a = await open_ws(relay.http, relay.ws_base + "/ws/device")
    b = await open_ws(relay.http, relay.ws_base + "/ws/device")
    assert a.challenge[11:43] == b.challenge[11:43]
    assert a.challenge[43:] != b.challenge[43:]
    await a.close()
    await b.close()


async def test_upgrade_needs_subprotocol(relay: Relay) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await relay.http.ws_connect(relay.ws_base + "/ws/device")
    assert err.value.status == 400
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await relay.http.ws_connect(relay.ws_base + "/ws/device", protocols=("other",))
    assert err.value.status == 400
    # A plain GET (no upgrade) gets the same JSON 400.
    status, data, _ = await relay.request("GET", "/ws/device")
    assert status == 400
    assert data["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("token", [None, "garbage-token"])
async def test_controller_needs_valid_token(relay: Relay, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await relay.http.ws_connect(
            relay.ws_base + "/ws/controller", protocols=("homeseal.v1",), headers=headers
        )
    assert err.value.status == 401


async def test_wrong_key_is_refused(relay: Relay) -> None:
    victim = Endpoint(ROLE_DEVICE)
    attacker = Endpoint(ROLE_DEVICE)
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    # Claims the victim's public key and id, but can only do DH with its own key.
    forged = attacker.respond(link.challenge)
    await link.send_raw(bytes((AUTH_RESPONSE,)) + victim.id + victim.pub + forged[43:])
    await link.expect_close(4001)
    assert await failures(relay, "device") == 1


async def test_replayed_response_is_refused(relay: Relay) -> None:
    device = Endpoint(ROLE_DEVICE)
    first = await open_ws(relay.http, relay.ws_base + "/ws/device")
    response = device.respond(first.challenge)
    await first.send_raw(response)
    await first.expect(AUTH_OK)
    second = await open_ws(relay.http, relay.ws_base + "/ws/device")
    await second.send_raw(response)  # answers an old nonce
    await second.expect_close(4001)
    # The legitimate connection was not replaced by the failed replay.
    await first.expect_silence()
    assert relay.router.registry.devices[device.id].ws is not None
    await first.close()


async def test_mismatched_id_is_refused(relay: Relay) -> None:
    device, other = Endpoint(ROLE_DEVICE), Endpoint(ROLE_DEVICE)
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    response = device.respond(link.challenge)
    await link.send_raw(response[:1] + other.id + response[11:])
    await link.expect_close(4001)


@pytest.mark.parametrize("point", LOW_ORDER, ids=lambda p: p.hex()[:8])
async def test_low_order_key_is_refused(relay: Relay, point: bytes) -> None:
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    relay_pub, nonce = link.challenge[11:43], link.challenge[43:]
    # The MAC an attacker would compute if the relay accepted the all-zero secret.
    mac = auth_mac(bytes(32), ROLE_DEVICE, relay_pub, point, nonce)
    await link.send_raw(bytes((AUTH_RESPONSE,)) + endpoint_id(point) + point + mac)
    await link.expect_close(4001)


async def test_role_is_bound(relay: Relay) -> None:
    token = await relay.account("rolecheck")
    # A controller's response on the device endpoint, and a device's on the controller one.
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    await link.send_raw(Endpoint(ROLE_CONTROLLER).respond(link.challenge))
    await link.expect_close(4001)
    link = await open_ws(relay.http, relay.ws_base + "/ws/controller", token)
    await link.send_raw(Endpoint(ROLE_DEVICE).respond(link.challenge))
    await link.expect_close(4001)
    assert await failures(relay, "controller") == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"", 4000),
        (b"\x02" + bytes(5), 4000),  # shorter than the header
        (bytes((SESSION,)) + bytes(10) + b"hi", 4000),  # a frame before auth
        (bytes((AUTH_OK,)) + bytes(10) + b"\x00", 4000),
        (b"\x02" + bytes(10) + bytes(63), 4001),  # wrong payload length
        (b"\x02" + bytes(10) + bytes(65), 4001),
        ("text", 4000),  # a text message
        (b"\x02" + bytes(5000), 1009),  # oversized
    ],
    ids=["empty", "short", "session", "auth-ok", "63", "65", "text", "oversized"],
)
async def test_bad_first_message(relay: Relay, message: bytes | str, code: int) -> None:
    pair = await claimed_pair(relay, "bystander")
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    if isinstance(message, str):
        await link.ws.send_str(message)
    else:
        await link.send_raw(message)
    await link.expect_close(code)
    await pair.assert_routes()


async def test_auth_timeout(relay_factory: RelayFactory) -> None:
    relay = await relay_factory(auth_timeout_s=0.3)
    link = await open_ws(relay.http, relay.ws_base + "/ws/device")
    # Pings do not extend the deadline.
    await link.ws.ping()
    await link.expect_close(4003)
    assert await failures(relay, "device") == 1


async def test_controller_id_bound_to_first_account(relay: Relay) -> None:
    controller = Endpoint(ROLE_CONTROLLER)
    token_a = await relay.account("owner-a")
    token_b = await relay.account("owner-b")
    link = await connect(relay.http, relay.ws_base, controller, token_a)
    await link.close()
    link = await open_ws(relay.http, relay.ws_base + "/ws/controller", token_b)
    await link.send_raw(controller.respond(link.challenge))
    await link.expect_close(4001)
    link = await connect(relay.http, relay.ws_base, controller, token_a)
    await link.close()
