"""Shared hypothesis strategies: raw bytes, and bytes shaped like the wire formats so the
fuzzer gets past the first length/type checks."""

from __future__ import annotations

import hashlib

from hypothesis import strategies as st

FRAME_TYPES = (0x01, 0x02, 0x03, 0x10, 0x11, 0x20, 0x30, 0x31, 0x32, 0x33, 0x40, 0x41)
MAX_FRAME = 4096

# X25519 points of small order (RFC 7748 §6.1 and the usual list) and edge encodings.
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    b"\xff" * 32,
]

raw = st.binary(max_size=600)
ids = st.binary(min_size=10, max_size=10) | st.just(bytes(10))
keys32 = st.binary(min_size=32, max_size=32) | st.sampled_from(LOW_ORDER)


@st.composite
def frames(draw: st.DrawFn, types: tuple[int, ...] = FRAME_TYPES) -> bytes:
    """A relay frame: mostly well-formed headers, lengths around the limits."""
    ftype = draw(st.sampled_from(types) | st.integers(0, 255))
    peer = draw(ids)
    size = draw(
        st.sampled_from([0, 1, 2, 33, 48, 64, MAX_FRAME - 11, MAX_FRAME - 10]) | st.integers(0, 200)
    )
    payload = draw(st.binary(min_size=min(size, 200), max_size=min(size, 200)))
    if size > 200:
        payload = payload + bytes(size - len(payload))
    return bytes((ftype,)) + peer + payload


def truncations(data: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, len(data)).map(lambda n: data[:n])


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """A valid message with a few bytes flipped, cut, extended or spliced."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "cut", "extend", "set"]))
        if op == "flip" and buf:
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut" and buf:
            buf = buf[: draw(st.integers(0, len(buf) - 1))]
        elif op == "extend":
            buf += draw(st.binary(min_size=1, max_size=40))
        elif buf:
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] = draw(st.integers(0, 255))
    return bytes(buf)


def endpoint_id(pub: bytes) -> bytes:
    return hashlib.sha256(pub).digest()[:10]
