"""Endpoint authentication to the relay (PROTOCOL §4), controller side."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

LABEL: Final = b"HomeSeal v1 relay auth"
ROLE_DEVICE: Final = 0x01
ROLE_CONTROLLER: Final = 0x02
KEY_LEN: Final = 32
NONCE_LEN: Final = 32


class RelayAuthError(Exception):
    """The challenge cannot be answered (bad length, low-order relay key)."""


def public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def auth_response(
    private: X25519PrivateKey, challenge: bytes, role: int = ROLE_CONTROLLER
) -> bytes:
    """AUTH_RESPONSE payload `s.pub ‖ mac` for an AUTH_CHALLENGE payload `R ‖ nonce`."""
    if len(challenge) != KEY_LEN + NONCE_LEN:
        raise RelayAuthError("AUTH_CHALLENGE payload must be 64 bytes")
    relay_pub, nonce = challenge[:KEY_LEN], challenge[KEY_LEN:]
    try:
        dh = private.exchange(X25519PublicKey.from_public_bytes(relay_pub))
    except ValueError as err:  # cryptography refuses an all-zero shared secret
        raise RelayAuthError("relay key gives an all-zero shared secret") from err
    if hmac.compare_digest(dh, bytes(KEY_LEN)):
        raise RelayAuthError("relay key gives an all-zero shared secret")
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=nonce, info=LABEL).derive(dh)
    own_pub = public_bytes(private)
    mac = hmac.new(
        key, LABEL + bytes((role,)) + relay_pub + own_pub + nonce, hashlib.sha256
    ).digest()
    return own_pub + mac
