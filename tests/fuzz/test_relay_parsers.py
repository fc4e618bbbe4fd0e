"""Fuzz the relay's parsers of network bytes: endpoint ids (§1.1) and AUTH_RESPONSE (§4).

The envelope itself is sliced, never parsed, by the relay (fuzzed through its
websocket in test_relay_ws.py; the library's decoder in test_client_parsers.py).

Property: any input is parsed or refused with the module's own error type — never
another exception.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import example, given
from hypothesis import strategies as st

from homeseal_protocol import relay_auth
from homeseal_protocol.errors import RelayAuthError
from homeseal_protocol.ids import format_id, parse_id
from relay_server import auth

from .profile import fuzz
from .strategies import LOW_ORDER, endpoint_id, ids, keys32, raw

RELAY_KEY = auth.RelayKey.from_private_bytes(bytes(range(32)))
NONCE = bytes(32)


@fuzz()
@given(text=st.text(max_size=40) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567- ABC"))
def test_parse_id_text(text: str) -> None:
    try:
        ident = parse_id(text)
    except ValueError:
        return
    assert len(ident) == 10
    assert parse_id(format_id(ident)) == ident


@fuzz()
@given(
    role=st.sampled_from([relay_auth.ROLE_DEVICE, relay_auth.ROLE_CONTROLLER])
    | st.integers(0, 255),
    peer=ids,
    payload=raw | st.builds(lambda k, m: k + m, keys32, st.binary(min_size=32, max_size=32)),
    match_id=st.booleans(),
)
@example(role=1, peer=bytes(10), payload=LOW_ORDER[0] + bytes(32), match_id=True)
@example(role=1, peer=bytes(10), payload=LOW_ORDER[1] + bytes(32), match_id=True)
@example(role=2, peer=bytes(10), payload=LOW_ORDER[4] + bytes(32), match_id=True)
def test_auth_response_never_accepted_without_the_key(
    role: int, peer: bytes, payload: bytes, match_id: bool
) -> None:
    if match_id and len(payload) >= 32:
        # Past the id check, so the DH and MAC steps see the fuzzed key.
        peer = endpoint_id(payload[:32])
    try:
        auth.verify_response(RELAY_KEY, NONCE, role, peer, payload)
    except RelayAuthError:
        return
    raise AssertionError("a response with a random MAC was accepted")


@fuzz(0.25)
@given(flip=st.integers(0, 64 * 8 - 1), role=st.sampled_from([1, 2]))
def test_auth_response_bit_flips_refused(flip: int, role: int) -> None:
    """A genuine response with any one bit flipped is refused (MAC or id check)."""
    key = X25519PrivateKey.from_private_bytes(bytes([7] * 32))
    pub = key.public_key().public_bytes_raw()
    dh = key.exchange(RELAY_KEY.private.public_key())
    payload = pub + relay_auth.compute_mac(dh, role, RELAY_KEY.public, pub, NONCE)
    verified = auth.verify_response(RELAY_KEY, NONCE, role, endpoint_id(pub), payload)
    assert verified.public_key == pub
    bad = bytearray(payload)
    bad[flip // 8] ^= 1 << (flip % 8)
    try:
        auth.verify_response(RELAY_KEY, NONCE, role, endpoint_id(pub), bytes(bad))
    except RelayAuthError:
        return
    raise AssertionError("a tampered AUTH_RESPONSE was accepted")
