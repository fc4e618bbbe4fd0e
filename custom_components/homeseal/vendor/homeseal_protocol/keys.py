"""Static X25519 keys as raw bytes (PROTOCOL §1): every endpoint has one."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

KEY_LEN = 32


def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def private_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte scalar."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key, `s.pub`."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_key(key: X25519PrivateKey | bytes) -> X25519PrivateKey:
    """Accept a key object or its raw 32 bytes."""
    if isinstance(key, bytes | bytearray):
        return X25519PrivateKey.from_private_bytes(bytes(key))
    return key
