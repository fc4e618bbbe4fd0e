"""Endpoint authentication (PROTOCOL §4) and the relay's static key.

dh  = X25519(relay s.priv, endpoint s.pub)        — all zero is refused
k   = HKDF-SHA256(salt = nonce, ikm = dh, info = LABEL, L = 32)
mac = HMAC-SHA256(k, LABEL ‖ role ‖ R ‖ s.pub ‖ nonce)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import envelope

LABEL: Final = b"HomeSeal v1 relay auth"
ROLE_DEVICE: Final = 0x01
ROLE_CONTROLLER: Final = 0x02
NONCE_LEN: Final = 32
KEY_LEN: Final = 32


class AuthError(Exception):
    """The AUTH_RESPONSE does not prove possession of the key it names (close 4001)."""


class KeyFileError(Exception):
    """The relay key file cannot be read, created or trusted."""


@dataclass(frozen=True, slots=True)
class RelayKey:
    private: X25519PrivateKey
    public: bytes

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> RelayKey:
        private = X25519PrivateKey.from_private_bytes(raw)
        return cls(private, private.public_key().public_bytes_raw())


def load_or_create_key(path: Path) -> RelayKey:
    """Read the relay's static key, creating it (mode 0600) on first start."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load_key(path)
    except OSError as err:
        raise KeyFileError(f"cannot create relay key file {path}: {err.strerror}") from err
    raw = secrets.token_bytes(KEY_LEN)
    try:
        os.write(fd, raw.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return RelayKey.from_private_bytes(raw)


def _load_key(path: Path) -> RelayKey:
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise KeyFileError(f"cannot read relay key file {path}: {err}") from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"relay key file {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
            "chmod 600 it"
        )
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != KEY_LEN:
        raise KeyFileError(f"relay key file {path} does not hold 32 hex-encoded bytes")
    return RelayKey.from_private_bytes(raw)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_LEN)


def challenge_payload(key: RelayKey, nonce: bytes) -> bytes:
    return key.public + nonce


def compute_mac(dh: bytes, role: int, relay_pub: bytes, endpoint_pub: bytes, nonce: bytes) -> bytes:
    """The MAC both sides compute (the endpoint side lives in the firmware and the integration)."""
    k = HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=LABEL).derive(dh)
    return hmac.new(
        k, LABEL + bytes((role,)) + relay_pub + endpoint_pub + nonce, hashlib.sha256
    ).digest()


def verify_response(
    key: RelayKey, nonce: bytes, role: int, peer_id: bytes, payload: bytes
) -> bytes:
    """Check an AUTH_RESPONSE; return the endpoint's static public key or raise AuthError."""
    if len(payload) != 2 * KEY_LEN:
        raise AuthError("AUTH_RESPONSE payload must be 64 bytes")
    endpoint_pub, mac = payload[:KEY_LEN], payload[KEY_LEN:]
    if not hmac.compare_digest(envelope.endpoint_id(endpoint_pub), peer_id):
        raise AuthError("endpoint id does not match the key")
    try:
        dh = key.private.exchange(X25519PublicKey.from_public_bytes(endpoint_pub))
    except ValueError as err:
        # OpenSSL refuses low-order points (all-zero shared secret) itself.
        raise AuthError("low-order public key") from err
    if dh == bytes(32):
        raise AuthError("low-order public key")
    expected = compute_mac(dh, role, key.public, endpoint_pub, nonce)
    if not hmac.compare_digest(expected, mac):
        raise AuthError("MAC does not verify")
    return endpoint_pub
