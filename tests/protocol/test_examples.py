"""The worked examples: generator output, committed JSON and PROTOCOL.md Appendix A agree."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from homeseal_protocol import pairing, session
from homeseal_protocol.crypto.noise import HandshakeState
from homeseal_protocol.ids import endpoint_id, parse_id, parse_setup_payload
from homeseal_protocol.messages import (
    parse_controller_message,
    parse_device_message,
)
from homeseal_protocol.relay_auth import auth_response
from tools import protocol_examples

HEX = re.compile(r"(?:[0-9a-f]{2})+")


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, value)]


def test_generator_matches_committed_json() -> None:
    committed = protocol_examples.JSON_PATH.read_text(encoding="utf-8")
    assert protocol_examples.render_json(protocol_examples.generate()) == committed, (
        "docs/examples/protocol_v1.json is stale: run python -m tools.protocol_examples --write"
    )


def test_every_hex_value_is_in_protocol_md() -> None:
    examples = json.loads(protocol_examples.JSON_PATH.read_text(encoding="utf-8"))
    doc = protocol_examples.PROTOCOL_PATH.read_text(encoding="utf-8")
    appendix = doc[doc.index(protocol_examples.APPENDIX_HEADING) :]
    # Long values are wrapped over several indented lines: compare without whitespace.
    flat = re.sub(r"\s+", "", appendix)
    hex_leaves = [
        (path, v)
        for path, v in _leaves(examples)
        if isinstance(v, str) and HEX.fullmatch(v) and not path.endswith("_json")
    ]
    assert len(hex_leaves) > 60
    missing = [path for path, v in hex_leaves if v not in flat]
    assert not missing, missing
    assert protocol_examples.render_appendix(examples) in doc


def test_examples_are_consistent() -> None:
    """Re-derive the key facts from the JSON alone, as the firmware tests will."""
    ex = json.loads(protocol_examples.JSON_PATH.read_text(encoding="utf-8"))
    keys = {k: bytes.fromhex(v) for k, v in ex["keys"].items() if not k.endswith("_text")}
    assert endpoint_id(keys["device_static_pub"]) == keys["device_id"]
    assert endpoint_id(keys["controller_static_pub"]) == keys["controller_id"]
    assert parse_id(ex["keys"]["device_id_text"]) == keys["device_id"]
    payload = parse_setup_payload(ex["setup_payload"]["payload_text"])
    assert payload.device_id == keys["device_id"]
    assert payload.setup_code == ex["setup_payload"]["setup_code"]

    # Relay auth: the integration's own implementation gives the same AUTH_RESPONSE.
    challenge = bytes.fromhex(ex["relay_auth"]["relay_static_pub"] + ex["relay_auth"]["nonce"])
    controller_key = X25519PrivateKey.from_private_bytes(keys["controller_static_priv"])
    frame = bytes.fromhex(ex["relay_auth"]["controller"]["auth_response_frame"])
    assert auth_response(controller_key, challenge, 0x02) == frame[11:]

    # Pairing messages decode, and the device's sealed key opens to its static key.
    pair = ex["pairing"]
    for message in pair["messages"]:
        frame = bytes.fromhex(message["frame"])
        assert frame[0] == message["frame_type"]
        assert frame[11:] == bytes.fromhex(message["body"])
        pairing.decode_message(frame[11:])
    opened = pairing.unseal_static(
        bytes.fromhex(pair["k_v"]),
        keys["controller_id"],
        keys["device_id"],
        bytes.fromhex(pair["sealed_device_pub"]),
    )
    assert opened == keys["device_static_pub"]

    # I2, I3 (§5.1), recomputed here by hand: the PBKDF input is RFC 9383 §3.2's with an
    # empty idProver, and Context binds the controller id and both parameter messages.
    def prefixed(item: bytes) -> bytes:
        return struct.pack("<Q", len(item)) + item

    code, device_id = pair["setup_code"].encode(), keys["device_id"]
    assert bytes.fromhex(pair["idProver"]) == b""
    assert bytes.fromhex(pair["pbkdf_input"]) == prefixed(code) + prefixed(b"") + prefixed(
        device_id
    )
    assert bytes.fromhex(pair["pbkdf_output"]) == hashlib.pbkdf2_hmac(
        "sha256", bytes.fromhex(pair["pbkdf_input"]), bytes.fromhex(pair["salt"]), 1000, 80
    )
    request, response = (bytes.fromhex(m["body"]) for m in pair["messages"][:2])
    context = (
        b"HomeSeal v1 pairing" + keys["controller_id"] + hashlib.sha256(request + response).digest()
    )
    assert bytes.fromhex(pair["context"]) == context
    assert bytes.fromhex(pair["TT"]).startswith(
        prefixed(context) + prefixed(b"") + prefixed(device_id)
    )

    # Session: a fresh responder with the fixed ephemeral reads HANDSHAKE1 and
    # writes exactly HANDSHAKE2, and the transport messages decrypt in order.
    sess = ex["session"]
    responder = HandshakeState(
        sess["protocol_name"],
        initiator=False,
        prologue=bytes.fromhex(sess["prologue"]),
        s=keys["device_static_priv"],
        e=bytes.fromhex(sess["device_ephemeral_priv"]),
        rs=keys["controller_static_pub"],
    )
    assert bytes.fromhex(sess["prologue"]) == session.prologue(
        keys["device_id"], keys["controller_id"]
    )
    assert responder.read_message(bytes.fromhex(sess["handshake1"])[1:]) == b""
    assert responder.write_message() == bytes.fromhex(sess["handshake2"])[1:]
    send, receive = responder.transport()
    kinds = []
    for message in sess["transport"]:
        data = bytes.fromhex(message["payload"])
        cipher = send if message["from"] == "device" else receive
        assert cipher.n == message["nonce"]
        if message["from"] == "device":
            assert cipher.encrypt_with_ad(b"", bytes.fromhex(message["plaintext"])) == data[1:]
        else:
            assert cipher.decrypt_with_ad(b"", data[1:]) == bytes.fromhex(message["plaintext"])
        decoded = json.loads(message["plaintext_json"])
        # Valid §7 messages by the integration's own strict parser.
        parse = parse_device_message if message["from"] == "device" else parse_controller_message
        parse(bytes.fromhex(message["plaintext"]))
        assert message["plaintext_json"].encode() == bytes.fromhex(message["plaintext"])
        kinds.append(decoded["t"])
    # The controller speaks first: its message confirms the session (§6.2).
    assert sess["transport"][0]["from"] == "controller"
    assert kinds == ["ping", "describe", "state", "pong", "command", "result"]
