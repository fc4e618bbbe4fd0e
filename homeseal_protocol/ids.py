"""Endpoint ids and the setup payload (PROTOCOL §1, §1.1, §1.2)."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Final

ID_LEN: Final = 10
ID_TEXT_LEN: Final = 16  # base32 of 10 bytes, no padding
SETUP_CODE_LEN: Final = 8
PAYLOAD_PREFIX: Final = "HS1"
TRIVIAL_CODES: Final = frozenset(
    {str(d) * SETUP_CODE_LEN for d in range(10)} | {"12345678", "87654321"}
)
_SEPARATORS: Final = re.compile(r"[-\s]")
_BASE32: Final = re.compile(r"[A-Z2-7]{16}")


def endpoint_id(static_pub: bytes) -> bytes:
    """SHA-256(s.pub)[0:10]: the id of the endpoint owning that X25519 public key."""
    if len(static_pub) != 32:
        raise ValueError("an X25519 public key is 32 bytes")
    return hashlib.sha256(static_pub).digest()[:ID_LEN]


def format_id(raw: bytes) -> str:
    """`mfrg-gzdf-mztw-q2lk`: base32, lowercase, four groups of four (§1.1)."""
    if len(raw) != ID_LEN:
        raise ValueError(f"an endpoint id is {ID_LEN} bytes, got {len(raw)}")
    text = base64.b32encode(raw).decode("ascii").lower()
    return "-".join(text[i : i + 4] for i in range(0, ID_TEXT_LEN, 4))


def parse_id(text: str) -> bytes:
    """Accept any case, ignore `-` and whitespace; exactly 10 bytes or ValueError."""
    compact = _SEPARATORS.sub("", text).upper()
    if len(compact) != ID_TEXT_LEN:
        raise ValueError(f"an endpoint id is {ID_TEXT_LEN} base32 characters, got {len(compact)}")
    if not _BASE32.fullmatch(compact):
        raise ValueError("an endpoint id uses only the letters a-z and digits 2-7")
    return base64.b32decode(compact)


def compact_id(raw: bytes) -> str:
    """The 16 uppercase base32 characters used inside the setup payload."""
    return format_id(raw).replace("-", "").upper()


def validate_setup_code(code: str) -> str:
    """Return the 8-digit code (dashes and spaces removed) or raise ValueError."""
    digits = _SEPARATORS.sub("", code)
    if len(digits) != SETUP_CODE_LEN or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"a setup code is {SETUP_CODE_LEN} digits")
    if digits in TRIVIAL_CODES:
        raise ValueError("this setup code is too easy to guess")
    return digits


def format_setup_code(code: str) -> str:
    """`2023-1187`: the code as printed for manual entry."""
    digits = validate_setup_code(code)
    return f"{digits[:4]}-{digits[4:]}"


@dataclass(frozen=True, slots=True)
class SetupPayload:
    """What the device label carries: its id and its setup code."""

    device_id: bytes
    setup_code: str

    def __repr__(self) -> str:  # keep the code out of logs and tracebacks
        return f"SetupPayload(device_id={format_id(self.device_id)!r}, setup_code='********')"


def format_setup_payload(device_id: bytes, code: str) -> str:
    """`HS1:<16 base32 characters>:<8 digits>` (§1.2)."""
    return f"{PAYLOAD_PREFIX}:{compact_id(device_id)}:{validate_setup_code(code)}"


def parse_setup_payload(text: str) -> SetupPayload:
    """Parse `HS1:MFRGGZDFMZTWQ2LK:20231187` (surrounding whitespace and case ignored)."""
    parts = text.strip().split(":")
    if len(parts) != 3 or parts[0].upper() != PAYLOAD_PREFIX:
        raise ValueError("a setup payload looks like HS1:<device id>:<setup code>")
    return SetupPayload(parse_id(parts[1]), validate_setup_code(parts[2]))
