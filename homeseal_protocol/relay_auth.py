"""Endpoint authentication to the relay (PROTOCOL §4) and control frames (§4.1), both sides.

    dh    = X25519(s.priv, R)                                    — never all zero
    k     = HKDF-SHA256(salt = nonce, ikm = dh, info = LABEL, L = 32)
    mac   = HMAC-SHA256(k, LABEL ‖ role ‖ R ‖ s.pub ‖ nonce)
    k_ctl = HKDF-SHA256(salt = nonce, ikm = dh, info = CONTROL_LABEL, L = 32)
    CLAIM / RELEASE payload = seq (4) ‖ HMAC-SHA256(k_ctl, type ‖ peer id ‖ seq)

The endpoint side (`auth_response`) is what a controller sends; the relay side
(`verify_response`, `verify_control`) is what the relay checks. The firmware
carries its own MicroPython copy of the endpoint side; the worked examples of
Appendix A tie the two together.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import RelayAuthError
from .ids import endpoint_id
from .keys import KEY_LEN, public_bytes

LABEL: Final = b"HomeSeal v1 relay auth"
CONTROL_LABEL: Final = b"HomeSeal v1 relay control"
ROLE_DEVICE: Final = 0x01
ROLE_CONTROLLER: Final = 0x02
NONCE_LEN: Final = 32
MAC_LEN: Final = 32
SEQ_LEN: Final = 4
CHALLENGE_LEN: Final = KEY_LEN + NONCE_LEN  # R ‖ nonce
RESPONSE_LEN: Final = KEY_LEN + MAC_LEN  # s.pub ‖ mac
CONTROL_PAYLOAD_LEN: Final = SEQ_LEN + MAC_LEN  # seq ‖ mac


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as err:  # OpenSSL refuses an all-zero result (a low-order point)
        raise RelayAuthError("low-order public key") from err
    if hmac.compare_digest(shared, bytes(KEY_LEN)):
        raise RelayAuthError("low-order public key")
    return shared


def _hkdf(dh: bytes, nonce: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=info).derive(dh)


def compute_mac(dh: bytes, role: int, relay_pub: bytes, endpoint_pub: bytes, nonce: bytes) -> bytes:
    """The AUTH_RESPONSE mac both sides compute."""
    k = _hkdf(dh, nonce, LABEL)
    return hmac.digest(k, LABEL + bytes((role,)) + relay_pub + endpoint_pub + nonce, "sha256")


def control_key(dh: bytes, nonce: bytes) -> bytes:
    """k_ctl of §4.1: per connection (fresh nonce), known only to the relay and the endpoint."""
    return _hkdf(dh, nonce, CONTROL_LABEL)


def control_mac(k_ctl: bytes, frame_type: int, peer_id: bytes, seq: int) -> bytes:
    """HMAC-SHA256(k_ctl, type ‖ peer id ‖ seq) for a CLAIM or RELEASE frame."""
    msg = bytes((frame_type,)) + peer_id + seq.to_bytes(SEQ_LEN, "big")
    return hmac.digest(k_ctl, msg, hashlib.sha256)


def control_payload(k_ctl: bytes, frame_type: int, peer_id: bytes, seq: int) -> bytes:
    """The `seq ‖ mac` payload of a CLAIM or RELEASE (what a device sends)."""
    return seq.to_bytes(SEQ_LEN, "big") + control_mac(k_ctl, frame_type, peer_id, seq)


# ---------------------------------------------------------------- endpoint side


@dataclass(frozen=True, slots=True)
class Answer:
    """What an endpoint derives from an AUTH_CHALLENGE: its AUTH_RESPONSE payload and
    the connection's control key."""

    response: bytes
    control_key: bytes


def answer_challenge(
    private: X25519PrivateKey, challenge: bytes, role: int = ROLE_CONTROLLER
) -> Answer:
    """Answer an AUTH_CHALLENGE payload `R ‖ nonce` (one X25519 for both results)."""
    if len(challenge) != CHALLENGE_LEN:
        raise RelayAuthError(f"AUTH_CHALLENGE payload must be {CHALLENGE_LEN} bytes")
    relay_pub, nonce = bytes(challenge[:KEY_LEN]), bytes(challenge[KEY_LEN:])
    dh = _dh(private, relay_pub)
    own_pub = public_bytes(private)
    mac = compute_mac(dh, role, relay_pub, own_pub, nonce)
    return Answer(own_pub + mac, control_key(dh, nonce))


def auth_response(
    private: X25519PrivateKey, challenge: bytes, role: int = ROLE_CONTROLLER
) -> bytes:
    """The AUTH_RESPONSE payload `s.pub ‖ mac` for an AUTH_CHALLENGE payload `R ‖ nonce`."""
    return answer_challenge(private, challenge, role).response


# ---------------------------------------------------------------- relay side


@dataclass(frozen=True, slots=True)
class Verified:
    """An endpoint that proved possession of its key, and the connection's control key."""

    public_key: bytes
    control_key: bytes


def verify_response(
    relay_private: X25519PrivateKey,
    relay_pub: bytes,
    nonce: bytes,
    peer_id: bytes,
    payload: bytes,
    *,
    role: int,
) -> Verified:
    """Check an AUTH_RESPONSE (peer id = SHA-256(s.pub)[0:10], mac in constant time)."""
    if len(payload) != RESPONSE_LEN:
        raise RelayAuthError(f"AUTH_RESPONSE payload must be {RESPONSE_LEN} bytes")
    endpoint_pub, mac = bytes(payload[:KEY_LEN]), bytes(payload[KEY_LEN:])
    if not hmac.compare_digest(endpoint_id(endpoint_pub), peer_id):
        raise RelayAuthError("endpoint id does not match the key")
    dh = _dh(relay_private, endpoint_pub)
    if not hmac.compare_digest(compute_mac(dh, role, relay_pub, endpoint_pub, nonce), mac):
        raise RelayAuthError("MAC does not verify")
    return Verified(endpoint_pub, control_key(dh, nonce))


def verify_control(
    k_ctl: bytes, frame_type: int, peer_id: bytes, payload: bytes, last_seq: int
) -> int:
    """Check a CLAIM/RELEASE payload `seq ‖ mac`; return seq or raise RelayAuthError.

    seq must be exactly last_seq + 1: a replay within the connection, a dropped or
    reordered control frame all fail here (across connections k_ctl differs).
    """
    if len(payload) != CONTROL_PAYLOAD_LEN:
        raise RelayAuthError(f"payload must be {CONTROL_PAYLOAD_LEN} bytes (seq ‖ mac)")
    seq = int.from_bytes(payload[:SEQ_LEN], "big")
    if not hmac.compare_digest(control_mac(k_ctl, frame_type, peer_id, seq), payload[SEQ_LEN:]):
        raise RelayAuthError("MAC does not verify")
    if seq != last_seq + 1:
        raise RelayAuthError("sequence number out of order")
    return seq
