"""Endpoint ids and setup payloads (PROTOCOL §1.1, §1.2)."""

from __future__ import annotations

import hashlib

import pytest

from homeseal_protocol.ids import (
    SetupPayload,
    endpoint_id,
    format_id,
    format_setup_code,
    format_setup_payload,
    parse_id,
    parse_setup_payload,
    validate_setup_code,
)

RAW = b"abcdefghij"  # base32: MFRGGZDFMZTWQ2LK, the example in §1.1


def test_endpoint_id_is_truncated_sha256() -> None:
    pub = bytes(range(32))
    assert endpoint_id(pub) == hashlib.sha256(pub).digest()[:10]
    with pytest.raises(ValueError, match="32 bytes"):
        endpoint_id(pub[:31])


def test_format_and_parse_id() -> None:
    assert format_id(RAW) == "mfrg-gzdf-mztw-q2lk"
    for text in ("mfrg-gzdf-mztw-q2lk", "MFRGGZDFMZTWQ2LK", " mfrg gzdf-MZTW q2lk\n"):
        assert parse_id(text) == RAW
    with pytest.raises(ValueError, match="10 bytes"):
        format_id(RAW[:9])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mfrg-gzdf-mztw-q2l", "16 base32 characters, got 15"),
        ("mfrg-gzdf-mztw-q2lkq", "16 base32 characters, got 17"),
        ("mfrg-gzdf-mztw-q2l1", "a-z and digits 2-7"),  # 1 is not base32
        ("mfrg-gzdf-mztw-q2l=", "a-z and digits 2-7"),
        ("", "got 0"),
    ],
)
def test_parse_id_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_id(text)


def test_setup_code_rules() -> None:
    assert validate_setup_code("20231187") == "20231187"
    assert validate_setup_code("2023-1187") == "20231187"
    assert format_setup_code("20231187") == "2023-1187"
    for trivial in ["00000000", "99999999", "12345678", "87654321", "5555-5555"]:
        with pytest.raises(ValueError, match="too easy"):
            validate_setup_code(trivial)
    fullwidth = "\uff12\uff10\uff12\uff13\uff11\uff11\uff18\uff17"
    for bad in ["2023118", "202311870", "2023118a", "", fullwidth]:
        with pytest.raises(ValueError, match="8 digits"):
            validate_setup_code(bad)


def test_setup_payload_round_trip() -> None:
    text = format_setup_payload(RAW, "20231187")
    assert text == "HS1:MFRGGZDFMZTWQ2LK:20231187"
    assert parse_setup_payload(text) == SetupPayload(RAW, "20231187")
    assert parse_setup_payload("  hs1:mfrg-gzdf-mztw-q2lk:2023-1187 \n").device_id == RAW
    assert "20231187" not in repr(parse_setup_payload(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("HS2:MFRGGZDFMZTWQ2LK:20231187", "HS1:<device id>"),
        ("HS1:MFRGGZDFMZTWQ2LK", "HS1:<device id>"),
        ("HS1:MFRGGZDFMZTWQ2LK:20231187:x", "HS1:<device id>"),
        ("HS1:MFRGGZDFMZTWQ2L:20231187", "16 base32"),
        ("HS1:MFRGGZDFMZTWQ2LK:12345678", "too easy"),
        ("HS1:MFRGGZDFMZTWQ2LK:1234567", "8 digits"),
        ("", "HS1:<device id>"),
    ],
)
def test_parse_setup_payload_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_setup_payload(text)
