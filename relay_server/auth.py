"""The relay's static key (its file, mode 0600), the nonces of its challenges, and the
check of an AUTH_RESPONSE against that key (PROTOCOL §4). The computations of §4
and §4.1 live in homeseal_protocol.relay_auth."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from homeseal_protocol import relay_auth
from homeseal_protocol.keys import KEY_LEN
from homeseal_protocol.relay_auth import NONCE_LEN, Verified


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


def verify_response(
    key: RelayKey, nonce: bytes, role: int, peer_id: bytes, payload: bytes
) -> Verified:
    """Check an AUTH_RESPONSE against this relay's key; RelayAuthError if it fails."""
    return relay_auth.verify_response(key.private, key.public, nonce, peer_id, payload, role=role)
