"""Endpoint authentication (PROTOCOL §4) and the relay's static key.

dh  = X25519(relay s.priv, endpoint s.pub)        — all zero is refused
k   = HKDF-SHA256(salt = nonce, ikm = dh, info = LABEL, L = 32)
mac = HMAC-SHA256(k, LABEL ‖ role ‖ R ‖ s.pub ‖ nonce)

After a successful exchange both sides also derive the connection's control key
(§4.1), which authenticates the device's CLAIM and RELEASE frames:

k_ctl = HKDF-SHA256(salt = nonce, ikm = dh, info = CONTROL_LABEL, L = 32)
mac   = HMAC-SHA256(k_ctl, type ‖ peer id ‖ seq)      — seq: 4 bytes, big-endian
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
CONTROL_LABEL: Final = b"HomeSeal v1 relay control"
ROLE_DEVICE: Final = 0x01
ROLE_CONTROLLER: Final = 0x02
NONCE_LEN: Final = 32
KEY_LEN: Final = 32
SEQ_LEN: Final = 4
CONTROL_PAYLOAD_LEN: Final = SEQ_LEN + 32  # seq ‖ mac


class AuthError(Exception):
    """The AUTH_RESPONSE does not prove possession of the key it names (close 4001)."""


class ControlAuthError(Exception):
    """A CLAIM/RELEASE frame that is not authenticated under the connection's k_ctl (4001)."""


class KeyFileError(Exception):
    """The relay key file cannot be read, created or trusted."""


@dataclass(frozen=True, slots=True)
class Verified:
    """An endpoint that proved possession of its key, and the connection's control key."""

    public_key: bytes
    control_key: bytes


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


def control_key(dh: bytes, nonce: bytes) -> bytes:
    """k_ctl of §4.1: per connection (fresh nonce), known only to the relay and the endpoint."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=CONTROL_LABEL).derive(dh)


def control_mac(k_ctl: bytes, frame_type: int, peer_id: bytes, seq: int) -> bytes:
    """HMAC-SHA256(k_ctl, type ‖ peer id ‖ seq) for a CLAIM or RELEASE frame."""
    msg = bytes((frame_type,)) + peer_id + seq.to_bytes(SEQ_LEN, "big")
    return hmac.new(k_ctl, msg, hashlib.sha256).digest()


def verify_control(
    k_ctl: bytes, frame_type: int, peer_id: bytes, payload: bytes, last_seq: int
) -> int:
    """Check a CLAIM/RELEASE payload `seq ‖ mac`; return seq or raise ControlAuthError.

    seq must be exactly last_seq + 1: a replay within the connection, a dropped or
    reordered control frame all fail here (across connections k_ctl differs).
    """
    if len(payload) != CONTROL_PAYLOAD_LEN:
        raise ControlAuthError(f"payload must be {CONTROL_PAYLOAD_LEN} bytes (seq ‖ mac)")
    seq = int.from_bytes(payload[:SEQ_LEN], "big")
    expected = control_mac(k_ctl, frame_type, peer_id, seq)
    if not hmac.compare_digest(expected, payload[SEQ_LEN:]):
        raise ControlAuthError("MAC does not verify")
    if seq != last_seq + 1:
        raise ControlAuthError("sequence number out of order")
    return seq


def verify_response(
    key: RelayKey, nonce: bytes, role: int, peer_id: bytes, payload: bytes
) -> Verified:
    """Check an AUTH_RESPONSE; return the endpoint's static public key and k_ctl, or raise
    AuthError."""
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
    return Verified(endpoint_pub, control_key(dh, nonce))
