"""CLAIM and RELEASE are authenticated under the connection's k_ctl (PROTOCOL §4.1).

Someone on a device's plain ws:// link can inject frames into its authenticated
connection; without k_ctl (derived from the §4 DH, which never crosses the link) the
injected control frame closes the connection with 4001 and ownership never moves.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest

from homeseal_protocol import relay_auth
from homeseal_protocol.errors import RelayAuthError
from homeseal_protocol.relay_auth import control_mac
from testbed.endpoints import (
    CLAIM,
    CLAIMED,
    ERROR,
    PAIR_START,
    PRESENCE,
    RELEASE,
    ZERO_ID,
    Link,
    connect,
    pair_and_claim,
)

from .conftest import Relay, claimed_pair

NOT_CLAIMABLE = b"\x04"


def owner_of(relay: Relay, device_id: bytes) -> int | None:
    rows = relay.rows("SELECT owner_account_id FROM devices WHERE device_id = ?", device_id)
    return None if not rows else rows[0][0]


def device_failures(relay: Relay) -> int:
    return int(relay.router.stats.auth_failures.get("device", 0))


def _seq(n: int) -> bytes:
    return n.to_bytes(4, "big")


# Each forgery gets (k_ctl of the connection, frame type, peer id, the seq the device
# would use next) and returns the payload it sends instead of `seq ‖ mac`.
Forgery = Callable[[bytes, int, bytes, int], bytes]
FORGERIES: dict[str, Forgery] = {
    "missing_mac": lambda k, t, p, n: b"",
    "seq_without_mac": lambda k, t, p, n: _seq(n),
    "zero_mac": lambda k, t, p, n: _seq(n) + bytes(32),
    "flipped_mac_bit": lambda k, t, p, n: _seq(n) + _flip(control_mac(k, t, p, n)),
    "mac_of_other_key": lambda k, t, p, n: _seq(n) + control_mac(bytes(32), t, p, n),
    "mac_of_other_type": lambda k, t, p, n: _seq(n) + control_mac(k, t ^ CLAIM ^ RELEASE, p, n),
    "mac_of_other_peer": lambda k, t, p, n: _seq(n) + control_mac(k, t, b"\x01" * 10, n),
    "previous_seq": lambda k, t, p, n: _seq(n - 1) + control_mac(k, t, p, n - 1),
    "skipped_seq": lambda k, t, p, n: _seq(n + 1) + control_mac(k, t, p, n + 1),
    "trailing_byte": lambda k, t, p, n: _seq(n) + control_mac(k, t, p, n) + b"\x00",
}


def _flip(mac: bytes) -> bytes:
    return bytes((mac[0] ^ 1,)) + mac[1:]


async def _refused(relay: Relay, link: Link, frame_type: int, peer: bytes, payload: bytes) -> None:
    before = device_failures(relay)
    await link.send(frame_type, peer, payload)
    frames = await link.expect_close(4001)
    assert all(f.type != CLAIMED for f in frames), frames
    assert device_failures(relay) == before + 1


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_claim_closes_and_claims_nothing(relay: Relay, forgery: str) -> None:
    token = await relay.account("claim-" + forgery.replace("_", "-"))
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    await ctl.send(PAIR_START, device.id, b"\x01\x01")
    await dev.expect(PAIR_START, controller.id)
    payload = FORGERIES[forgery](dev.k_ctl, CLAIM, controller.id, 1)
    await _refused(relay, dev, CLAIM, controller.id, payload)
    assert owner_of(relay, device.id) is None
    await ctl.expect_silence(0.1)  # no PRESENCE online: nothing was claimed
    # The device itself reconnects and claims with a valid frame (seq 1 again).
    dev = await connect(relay.http, relay.ws_base, device)
    await ctl.send(PAIR_START, device.id, b"\x01\x01")
    await dev.expect(PAIR_START, controller.id)
    await dev.send_control(CLAIM, controller.id)
    await dev.expect(CLAIMED, controller.id, b"")
    assert owner_of(relay, device.id) is not None
    await dev.close()
    await ctl.close()


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_release_closes_and_keeps_owner(relay: Relay, forgery: str) -> None:
    pair = await claimed_pair(relay, "release-" + forgery.replace("_", "-"))
    owner = owner_of(relay, pair.device.id)
    assert owner is not None
    # claimed_pair's CLAIM used seq 1: a RELEASE now needs seq 2.
    assert pair.dev.control_seq == 1
    payload = FORGERIES[forgery](pair.dev.k_ctl, RELEASE, ZERO_ID, 2)
    await _refused(relay, pair.dev, RELEASE, ZERO_ID, payload)
    assert owner_of(relay, pair.device.id) == owner
    await pair.ctl.expect(PRESENCE, pair.device.id, b"\x00")  # it disconnected, nothing more
    dev = await connect(relay.http, relay.ws_base, pair.device)
    assert dev.auth_flags == b"\x01"
    await pair.ctl.expect(PRESENCE, pair.device.id, b"\x01")
    pair.dev = dev
    await pair.assert_routes()


async def test_control_sequence_within_and_across_connections(relay: Relay) -> None:
    token = await relay.account("sequencer")
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    await ctl.send(PAIR_START, device.id, b"\x01\x01")
    await dev.expect(PAIR_START, controller.id)
    # A refused (not_claimable) but authenticated CLAIM still uses up its seq.
    await dev.send_control(CLAIM, b"\x07" * 10)
    await dev.expect(ERROR, b"\x07" * 10, NOT_CLAIMABLE)
    await dev.send_control(CLAIM, controller.id)  # seq 2
    await dev.expect(CLAIMED, controller.id, b"")
    await ctl.expect(PRESENCE, device.id, b"\x01")
    release = dev.control_payload(RELEASE)  # seq 3
    await dev.send(RELEASE, ZERO_ID, release)
    await ctl.expect(PRESENCE, device.id, b"\x00")
    assert owner_of(relay, device.id) is None
    await ctl.send(PAIR_START, device.id, b"\x01\x01")
    await dev.expect(PAIR_START, controller.id)
    await dev.send_control(CLAIM, controller.id)  # seq 4
    await dev.expect(CLAIMED, controller.id, b"")
    await ctl.expect(PRESENCE, device.id, b"\x01")
    owner = owner_of(relay, device.id)
    assert owner is not None
    # Replaying the earlier RELEASE on the same connection: refused (seq), still owned.
    await _refused(relay, dev, RELEASE, ZERO_ID, release)
    assert owner_of(relay, device.id) == owner
    await ctl.expect(PRESENCE, device.id, b"\x00")
    # On a new connection seq starts at 1 again, but under a new k_ctl (fresh nonce):
    # the old connection's seq-1 CLAIM, replayed, is refused.
    old_k_ctl = dev.k_ctl
    dev = await connect(relay.http, relay.ws_base, device)
    await ctl.expect(PRESENCE, device.id, b"\x01")
    assert dev.k_ctl != old_k_ctl
    stale = _seq(1) + control_mac(old_k_ctl, RELEASE, ZERO_ID, 1)
    await _refused(relay, dev, RELEASE, ZERO_ID, stale)
    assert owner_of(relay, device.id) == owner
    await ctl.expect(PRESENCE, device.id, b"\x00")
    dev = await connect(relay.http, relay.ws_base, device)
    await ctl.expect(PRESENCE, device.id, b"\x01")
    await dev.send_control(RELEASE)  # seq 1 of this connection: accepted
    await ctl.expect(PRESENCE, device.id, b"\x00")
    assert owner_of(relay, device.id) is None
    await dev.close()
    await ctl.close()


async def test_captured_claim_is_useless_on_the_next_connection(relay: Relay) -> None:
    """The device's own valid CLAIM, recorded by someone on its link, replayed into the
    device's next connection (after the owner released it) claims nothing."""
    token = await relay.account("recorded")
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    await ctl.send(PAIR_START, device.id, b"\x01\x01")
    await dev.expect(PAIR_START, controller.id)
    recorded = dev.control_payload(CLAIM, controller.id)
    await dev.send(CLAIM, controller.id, recorded)
    await dev.expect(CLAIMED, controller.id, b"")
    await ctl.expect(PRESENCE, device.id, b"\x01")
    await dev.send_control(RELEASE)
    await ctl.expect(PRESENCE, device.id, b"\x00")
    assert owner_of(relay, device.id) is None
    await dev.close()
    dev = await connect(relay.http, relay.ws_base, device)
    await ctl.send(PAIR_START, device.id, b"\x01\x01")  # the controller is a pairing peer
    await dev.expect(PAIR_START, controller.id)
    await _refused(relay, dev, CLAIM, controller.id, recorded)
    assert owner_of(relay, device.id) is None
    await ctl.close()


def test_control_mac_primitives() -> None:
    k = bytes(range(32))
    peer = b"\x05" * 10
    good = _seq(7) + control_mac(k, CLAIM, peer, 7)
    assert relay_auth.verify_control(k, CLAIM, peer, good, 6) == 7
    # §4.1 written out with the standard library: an oracle independent of the library.
    oracle = hmac.new(k, bytes((CLAIM,)) + peer + (7).to_bytes(4, "big"), hashlib.sha256)
    assert relay_auth.control_mac(k, CLAIM, peer, 7) == oracle.digest()
    for bad_last in (5, 7, 0):
        with pytest.raises(RelayAuthError, match="sequence"):
            relay_auth.verify_control(k, CLAIM, peer, good, bad_last)
    for payload in (b"", good[:-1], good + b"\x00", good[:4] + bytes(32)):
        with pytest.raises(RelayAuthError):
            relay_auth.verify_control(k, CLAIM, peer, payload, 6)
    with pytest.raises(RelayAuthError, match="MAC"):
        relay_auth.verify_control(k, RELEASE, peer, good, 6)
    with pytest.raises(RelayAuthError, match="MAC"):
        relay_auth.verify_control(k, CLAIM, bytes(10), good, 6)


async def test_pair_and_claim_helper_uses_seq_one(relay: Relay) -> None:
    """The shared helper (used by the other suites) sends an authenticated CLAIM."""
    token = await relay.account("helper")
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    await pair_and_claim(ctl, controller.id, dev, device.id)
    assert dev.control_seq == 1
    assert owner_of(relay, device.id) is not None
    await dev.close()
    await ctl.close()
