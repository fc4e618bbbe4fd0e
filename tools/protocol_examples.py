"""Worked examples of protocol v1 (docs/PROTOCOL.md Appendix A), from fixed inputs.

    python -m tools.protocol_examples            # print the JSON
    python -m tools.protocol_examples --write    # write docs/examples/protocol_v1.json
                                                 # and Appendix A of docs/PROTOCOL.md

Every secret below is derived from a public label (SHA-256 of "HomeSeal v1
example: <label>"), so anyone can regenerate the same bytes. The controller's
values are computed with the client library (homeseal_protocol);
the device's with the same primitives used the device's way round, so the
firmware's tests can reproduce each value from docs/examples/protocol_v1.json.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from homeseal_protocol import pairing, session
from homeseal_protocol.crypto import p256, spake2plus
from homeseal_protocol.crypto.noise import HandshakeState, KeyPair
from homeseal_protocol.ids import (
    endpoint_id,
    format_id,
    format_setup_code,
    format_setup_payload,
)

ROOT: Final = Path(__file__).resolve().parent.parent
JSON_PATH: Final = ROOT / "docs" / "examples" / "protocol_v1.json"
PROTOCOL_PATH: Final = ROOT / "docs" / "PROTOCOL.md"
APPENDIX_HEADING: Final = "## Appendix A. Worked examples"

SETUP_CODE: Final = "31415926"
ITERATIONS: Final = 1000  # the minimum, so tests on the device side stay quick
RELAY_AUTH_LABEL: Final = b"HomeSeal v1 relay auth"
RELAY_CONTROL_LABEL: Final = b"HomeSeal v1 relay control"
HEX_WRAP: Final = 64
# 2: RESET is reason only; PBKDF input and Context of RFC 9383 §3.2 (I2, I3); the
# controller's first transport message confirms a session (L2).
REVISION: Final = 2

# Frame types of §3 used below.
AUTH_CHALLENGE: Final = 0x01
AUTH_RESPONSE: Final = 0x02
PAIR_START: Final = 0x10
PAIR: Final = 0x11
SESSION: Final = 0x20
CLAIM: Final = 0x30


def secret(label: str) -> bytes:
    """The 32 fixed bytes behind every example input."""
    return hashlib.sha256(b"HomeSeal v1 example: " + label.encode()).digest()


def scalar(label: str) -> int:
    """A fixed P-256 scalar in [1, n-1]."""
    return int.from_bytes(secret(label), "big") % (p256.N - 1) + 1


def frame(frame_type: int, peer: bytes, payload: bytes) -> bytes:
    """A relay envelope (§3): type ‖ peer id ‖ payload."""
    return bytes((frame_type,)) + peer + payload


def relay_auth(
    static: KeyPair, relay: KeyPair, nonce: bytes, role: int, claim_peer: bytes | None = None
) -> dict[str, Any]:
    """§4 for one endpoint, step by step; with claim_peer, also §4.1's k_ctl and the
    connection's first control frame, a CLAIM naming that controller."""
    dh = X25519PrivateKey.from_private_bytes(static.private).exchange(
        X25519PublicKey.from_public_bytes(relay.public)
    )
    k = HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=RELAY_AUTH_LABEL).derive(dh)
    mac_input = RELAY_AUTH_LABEL + bytes((role,)) + relay.public + static.public + nonce
    mac = hmac.digest(k, mac_input, hashlib.sha256)
    own_id = endpoint_id(static.public)
    out: dict[str, Any] = {
        "role": role,
        "auth_challenge_frame": frame(AUTH_CHALLENGE, bytes(10), relay.public + nonce).hex(),
        "dh": dh.hex(),
        "k": k.hex(),
        "mac_input": mac_input.hex(),
        "mac": mac.hex(),
        "auth_response_frame": frame(AUTH_RESPONSE, own_id, static.public + mac).hex(),
    }
    if claim_peer is not None:
        k_ctl = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=nonce, info=RELAY_CONTROL_LABEL
        ).derive(dh)
        seq = 1
        claim_input = bytes((CLAIM,)) + claim_peer + seq.to_bytes(4, "big")
        claim_mac = hmac.digest(k_ctl, claim_input, hashlib.sha256)
        out["k_ctl"] = k_ctl.hex()
        out["claim"] = {
            "seq": seq,
            "mac_input": claim_input.hex(),
            "mac": claim_mac.hex(),
            "frame": frame(CLAIM, claim_peer, seq.to_bytes(4, "big") + claim_mac).hex(),
        }
    return out


def _message(name: str, sender: str, frame_type: int, peer: bytes, body: bytes) -> dict[str, Any]:
    return {
        "name": name,
        "from": sender,
        "frame_type": frame_type,
        "body": body.hex(),
        "frame": frame(frame_type, peer, body).hex(),
    }


def pairing_example(
    controller: KeyPair, device: KeyPair, controller_id: bytes, device_id: bytes
) -> dict[str, Any]:
    """§5 from PBKDF_PARAM_REQUEST to PAIR_DONE, with fixed salt, x and y."""
    salt = secret("pairing salt")[:16]
    x, y = scalar("pairing x"), scalar("pairing y")
    w0, w1 = pairing.derive_w0_w1(SETUP_CODE, salt, ITERATIONS, device_id)
    w0_bytes, l_bytes = pairing.device_verifier(SETUP_CODE, salt, ITERATIONS, device_id)
    attempts_left = 20

    # Controller side: the client library's state machine.
    ctl = pairing.ControllerPairing(device_id, controller.private, SETUP_CODE, x=x)
    request = ctl.start()
    response = pairing.PbkdfParamResponse(ITERATIONS, salt, attempts_left).encode()
    context = pairing.pairing_context(controller_id, request, response)
    # Device side: the Verifier and the §5.3 sealing helpers.
    verifier = spake2plus.Verifier(context, pairing.ID_PROVER, device_id, w0_bytes, l_bytes, y=y)
    pake1 = ctl.receive(response)
    assert pake1 is not None
    share_p = pake1[1:]
    share_v, confirm_v = verifier.respond(share_p)
    pake2 = pairing.Pake2(share_v, confirm_v).encode()
    pake3 = ctl.receive(pake2)
    assert pake3 is not None
    confirm_p = pake3[1:33]
    k_shared = verifier.finish(confirm_p)
    k_p, k_v = pairing.pairing_keys(k_shared)
    sealed_controller = pake3[33:]
    unsealed = pairing.unseal_static(k_p, controller_id, device_id, sealed_controller)
    assert unsealed == controller.public
    sealed_device = pairing.seal_static(k_v, controller_id, device_id, device.public)
    done = pairing.PairDone(sealed_device).encode()
    assert ctl.receive(done) is None
    assert ctl.device_static_pub == device.public

    # Z and V as each side computes them (the Prover's and the Verifier's agree).
    z = p256.multiply(y, p256.decode_point(share_p) - p256.multiply(w0, spake2plus.M)).encode()
    v = p256.multiply(w1, p256.decode_point(share_v) - p256.multiply(w0, spake2plus.N)).encode()
    tt = spake2plus.transcript(context, pairing.ID_PROVER, device_id, share_p, share_v, z, v, w0)
    k_confirm_p, k_confirm_v, k_shared_tt = spake2plus.key_schedule(tt)
    assert k_shared_tt == k_shared

    wrong = b"\x7f" + bytes((pairing.ErrorCode.WRONG_CODE, attempts_left - 1))
    return {
        "context_label": pairing.CONTEXT_LABEL.decode(),
        "params_hash": hashlib.sha256(request + response).hexdigest(),
        "context": context.hex(),
        "idProver": pairing.ID_PROVER.hex(),
        "idVerifier": device_id.hex(),
        "setup_code": SETUP_CODE,
        "password": SETUP_CODE.encode().hex(),
        "pbkdf_input": spake2plus.pbkdf_input(
            SETUP_CODE.encode(), pairing.ID_PROVER, device_id
        ).hex(),
        "salt": salt.hex(),
        "iterations": ITERATIONS,
        "attempts_left": attempts_left,
        "pbkdf_output": hashlib.pbkdf2_hmac(
            "sha256",
            spake2plus.pbkdf_input(SETUP_CODE.encode(), pairing.ID_PROVER, device_id),
            salt,
            ITERATIONS,
            80,
        ).hex(),
        "w0": w0_bytes.hex(),
        "w1": p256.scalar_to_bytes(w1).hex(),
        "L": l_bytes.hex(),
        "x": p256.scalar_to_bytes(x).hex(),
        "y": p256.scalar_to_bytes(y).hex(),
        "shareP": share_p.hex(),
        "shareV": share_v.hex(),
        "Z": z.hex(),
        "V": v.hex(),
        "TT": tt.hex(),
        "K_main": hashlib.sha256(tt).digest().hex(),
        "K_confirmP": k_confirm_p.hex(),
        "K_confirmV": k_confirm_v.hex(),
        "confirmP": confirm_p.hex(),
        "confirmV": confirm_v.hex(),
        "K_shared": k_shared.hex(),
        "k_p": k_p.hex(),
        "k_v": k_v.hex(),
        "sealing_ad": (controller_id + device_id).hex(),
        "sealed_controller_pub": sealed_controller.hex(),
        "sealed_device_pub": sealed_device.hex(),
        "messages": [
            _message("PBKDF_PARAM_REQUEST", "controller", PAIR_START, device_id, request),
            _message("PBKDF_PARAM_RESPONSE", "device", PAIR, controller_id, response),
            _message("PAKE1", "controller", PAIR, device_id, pake1),
            _message("PAKE2", "device", PAIR, controller_id, pake2),
            _message("PAKE3", "controller", PAIR, device_id, pake3),
            _message("PAIR_DONE", "device", PAIR, controller_id, done),
        ],
        "wrong_code_error": _message(
            "PAIR_ERROR (wrong_code, had confirmP failed)", "device", PAIR, controller_id, wrong
        ),
    }


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


DESCRIBE: Final = {
    "t": "describe",
    "fw": "0.1.0",
    "model": "unix",
    "name": "Porch",
    "entities": [
        {"key": "relay", "kind": "switch", "name": "Relay"},
        {
            "key": "temp",
            "kind": "sensor",
            "name": "Temperature",
            "device_class": "temperature",
            "unit": "°C",
            "state_class": "measurement",
        },
    ],
}
STATE: Final = {"t": "state", "s": {"relay": False, "temp": 21.5}}
PING: Final = {"t": "ping", "id": 1}
PONG: Final = {"t": "pong", "id": 1}
COMMAND: Final = {"t": "command", "id": 1, "key": "relay", "action": "turn_on"}
RESULT: Final = {"t": "result", "id": 1, "ok": True}


def session_example(
    controller: KeyPair, device: KeyPair, controller_id: bytes, device_id: bytes
) -> dict[str, Any]:
    """§6: a KK handshake with fixed ephemerals, then §7 messages both ways."""
    e_i = KeyPair.from_private(secret("session controller ephemeral"))
    e_r = KeyPair.from_private(secret("session device ephemeral"))
    ctl = session.InitiatorSession(
        controller.private, device.public, device_id, controller_id, ephemeral=e_i.private
    )
    responder = HandshakeState(
        session.PROTOCOL_NAME,
        initiator=False,
        prologue=session.prologue(device_id, controller_id),
        s=device,
        e=e_r,
        rs=controller.public,
    )
    handshake1 = ctl.start()
    responder.read_message(handshake1[1:])
    handshake2 = bytes((session.Kind.HANDSHAKE2,)) + responder.write_message(b"")
    assert ctl.receive(handshake2) is None
    # Split(): c1 carries controller → device, c2 device → controller.
    r_recv, r_send = responder.split()
    c1_key, c2_key = r_recv.k, r_send.k
    assert c1_key is not None
    assert c2_key is not None

    messages: list[dict[str, Any]] = []

    def device_sends(message: dict[str, Any]) -> None:
        plaintext = _json(message)
        nonce = r_send.n
        payload = bytes((session.Kind.TRANSPORT,)) + r_send.encrypt_with_ad(b"", plaintext)
        assert ctl.receive(payload) == plaintext
        messages.append(_transport("device", nonce, plaintext, payload, controller_id))

    def controller_sends(message: dict[str, Any]) -> None:
        plaintext = _json(message)
        nonce = ctl.messages_sent
        payload = ctl.encrypt(plaintext)
        assert r_recv.decrypt_with_ad(b"", payload[1:]) == plaintext
        messages.append(_transport("controller", nonce, plaintext, payload, device_id))

    # The controller's first message confirms the session (§6.2); the device then
    # describes itself and answers the ping.
    controller_sends(PING)
    device_sends(DESCRIBE)
    device_sends(STATE)
    device_sends(PONG)
    controller_sends(COMMAND)
    device_sends(RESULT)

    return {
        "protocol_name": session.PROTOCOL_NAME,
        "prologue": session.prologue(device_id, controller_id).hex(),
        "controller_ephemeral_priv": e_i.private.hex(),
        "controller_ephemeral_pub": e_i.public.hex(),
        "device_ephemeral_priv": e_r.private.hex(),
        "device_ephemeral_pub": e_r.public.hex(),
        "handshake1": handshake1.hex(),
        "handshake1_frame": frame(SESSION, device_id, handshake1).hex(),
        "handshake2": handshake2.hex(),
        "handshake2_frame": frame(SESSION, controller_id, handshake2).hex(),
        "handshake_hash": responder.get_handshake_hash().hex(),
        "k_controller_to_device": c1_key.hex(),
        "k_device_to_controller": c2_key.hex(),
        "transport": messages,
    }


def _transport(
    sender: str, nonce: int, plaintext: bytes, payload: bytes, peer: bytes
) -> dict[str, Any]:
    return {
        "from": sender,
        "nonce": nonce,
        "plaintext_json": plaintext.decode(),
        "plaintext": plaintext.hex(),
        "payload": payload.hex(),
        "frame": frame(SESSION, peer, payload).hex(),
    }


def generate() -> dict[str, Any]:
    """All worked examples, as one JSON-ready dictionary."""
    controller = KeyPair.from_private(secret("controller static"))
    device = KeyPair.from_private(secret("device static"))
    relay = KeyPair.from_private(secret("relay static"))
    controller_id, device_id = endpoint_id(controller.public), endpoint_id(device.public)
    relay_nonce = secret("relay nonce")
    return {
        # Bumped whenever the wire format changes (implementations check they match).
        "revision": REVISION,
        "about": (
            "HomeSeal protocol v1 worked examples (docs/PROTOCOL.md Appendix A), generated by "
            "tools/protocol_examples.py. Byte strings are lowercase hex. Text: 'about', "
            "'context_label', 'protocol_name', 'name', 'from', 'setup_code', *_text and *_json "
            "(the JSON plaintext, whose UTF-8 bytes are the neighbouring 'plaintext'). Every "
            "fixed input is SHA-256('HomeSeal v1 example: ' + label), with the labels in "
            "'input_labels'. 'frame' fields are whole relay envelopes (type 1 byte, peer id "
            "10 bytes, payload) as sent by the endpoint named in 'from' (peer id = the "
            "destination); 'body' and 'payload' are what the frame carries. X25519 private "
            "keys are given unclamped, as stored; P-256 scalars and points big-endian, points "
            "SEC1 uncompressed. 'nonce' in session.transport is the Noise counter n of the "
            "sender's CipherState."
        ),
        "input_labels": {
            "controller_static_priv": "controller static",
            "device_static_priv": "device static",
            "relay_static_priv": "relay static",
            "relay_auth.nonce": "relay nonce",
            "pairing.salt": "pairing salt (first 16 bytes)",
            "pairing.x": "pairing x (as a scalar: mod n-1, plus 1)",
            "pairing.y": "pairing y (as a scalar: mod n-1, plus 1)",
            "session.controller_ephemeral_priv": "session controller ephemeral",
            "session.device_ephemeral_priv": "session device ephemeral",
        },
        "keys": {
            "controller_static_priv": controller.private.hex(),
            "controller_static_pub": controller.public.hex(),
            "controller_id": controller_id.hex(),
            "controller_id_text": format_id(controller_id),
            "device_static_priv": device.private.hex(),
            "device_static_pub": device.public.hex(),
            "device_id": device_id.hex(),
            "device_id_text": format_id(device_id),
            "relay_static_priv": relay.private.hex(),
            "relay_static_pub": relay.public.hex(),
        },
        "setup_payload": {
            "device_id": device_id.hex(),
            "setup_code": SETUP_CODE,
            "payload_text": format_setup_payload(device_id, SETUP_CODE),
            "manual_entry_text": format_setup_code(SETUP_CODE),
        },
        "relay_auth": {
            "relay_static_pub": relay.public.hex(),
            "nonce": relay_nonce.hex(),
            "device": relay_auth(device, relay, relay_nonce, 0x01, claim_peer=controller_id),
            "controller": relay_auth(controller, relay, relay_nonce, 0x02),
        },
        "pairing": pairing_example(controller, device, controller_id, device_id),
        "session": session_example(controller, device, controller_id, device_id),
    }


def render_json(examples: dict[str, Any]) -> str:
    return json.dumps(examples, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- Appendix A


def _hex_block(pairs: list[tuple[str, str]]) -> list[str]:
    """A code block of `name = hex`, long values wrapped at 64 digits under the name."""
    out = ["```"]
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        chunks = [value[i : i + HEX_WRAP] for i in range(0, len(value), HEX_WRAP)] or [""]
        out.append(f"{name.ljust(width)} = {chunks[0]}")
        out.extend(" " * (width + 3) + chunk for chunk in chunks[1:])
    out.append("```")
    return out


def render_appendix(ex: dict[str, Any]) -> str:
    """Appendix A of PROTOCOL.md, from the examples."""
    keys, setup, auth = ex["keys"], ex["setup_payload"], ex["relay_auth"]
    pair, sess = ex["pairing"], ex["session"]
    lines = [
        APPENDIX_HEADING,
        "",
        "Generated by `tools/protocol_examples.py` (`python -m tools.protocol_examples",
        "--write`) into `docs/examples/protocol_v1.json` and this appendix; the tests on",
        "both sides reproduce every value. Each input is",
        '`SHA-256("HomeSeal v1 example: " ‖ label)` (P-256 scalars: that mod n-1, plus 1),',
        "with the labels in the JSON's `input_labels`. Values are hex; long ones wrap at 64",
        "digits.",
        "",
        "### A.1 Keys and endpoint ids (§1.1)",
        "",
        *_hex_block(
            [
                ("controller s.priv", keys["controller_static_priv"]),
                ("controller s.pub", keys["controller_static_pub"]),
                ("controller id", keys["controller_id"]),
                ("device s.priv", keys["device_static_priv"]),
                ("device s.pub", keys["device_static_pub"]),
                ("device id", keys["device_id"]),
                ("relay s.priv", keys["relay_static_priv"]),
                ("relay s.pub", keys["relay_static_pub"]),
            ]
        ),
        "",
        f"In text the device id is `{keys['device_id_text']}` and the controller id",
        f"`{keys['controller_id_text']}`.",
        "",
        "### A.2 Setup payload (§1.2)",
        "",
        f"Setup code `{setup['setup_code']}` (printed `{setup['manual_entry_text']}`); the QR",
        f"payload is `{setup['payload_text']}`.",
        "",
        "### A.3 Relay authentication (§4)",
        "",
        "The relay's challenge (the same for both endpoints here):",
        "",
        *_hex_block(
            [
                ("nonce", auth["nonce"]),
                ("AUTH_CHALLENGE", auth["device"]["auth_challenge_frame"]),
            ]
        ),
        "",
    ]
    for who in ("device", "controller"):
        a = auth[who]
        lines += [
            f"The {who} (role 0x{a['role']:02x}) answers:",
            "",
            *_hex_block(
                [
                    ("dh", a["dh"]),
                    ("k", a["k"]),
                    ("mac input", a["mac_input"]),
                    ("mac", a["mac"]),
                    ("AUTH_RESPONSE", a["auth_response_frame"]),
                ]
            ),
            "",
        ]
        if "claim" in a:
            c = a["claim"]
            lines += [
                "Its control key (§4.1), and its first control frame on this connection,",
                f"`CLAIM` naming the controller with seq {c['seq']}:",
                "",
                *_hex_block(
                    [
                        ("k_ctl", a["k_ctl"]),
                        ("mac input", c["mac_input"]),
                        ("mac", c["mac"]),
                        ("CLAIM", c["frame"]),
                    ]
                ),
                "",
            ]
    lines += [
        "### A.4 Pairing (§5)",
        "",
        f"Setup code `{pair['setup_code']}` (password bytes `{pair['password']}`),",
        f"{pair['iterations']} PBKDF2 iterations, {pair['attempts_left']} attempts left.",
        "`idProver` is empty and `idVerifier` the device id (§5.1); `Context` is",
        f'`"{pair["context_label"]}"` ‖ controller id ‖ SHA-256(PBKDF_PARAM_REQUEST ‖',
        "PBKDF_PARAM_RESPONSE), the two messages below.",
        "",
        *_hex_block(
            [
                ("params hash", pair["params_hash"]),
                ("Context", pair["context"]),
                ("salt", pair["salt"]),
                ("PBKDF2 input", pair["pbkdf_input"]),
                ("PBKDF2 output", pair["pbkdf_output"]),
                ("w0", pair["w0"]),
                ("w1", pair["w1"]),
                ("L", pair["L"]),
                ("x", pair["x"]),
                ("y", pair["y"]),
                ("shareP", pair["shareP"]),
                ("shareV", pair["shareV"]),
                ("Z", pair["Z"]),
                ("V", pair["V"]),
                ("TT", pair["TT"]),
                ("K_main", pair["K_main"]),
                ("K_confirmP", pair["K_confirmP"]),
                ("K_confirmV", pair["K_confirmV"]),
                ("confirmP", pair["confirmP"]),
                ("confirmV", pair["confirmV"]),
                ("K_shared", pair["K_shared"]),
                ("k_p", pair["k_p"]),
                ("k_v", pair["k_v"]),
                ("sealing ad", pair["sealing_ad"]),
                ("sealed controller s.pub", pair["sealed_controller_pub"]),
                ("sealed device s.pub", pair["sealed_device_pub"]),
            ]
        ),
        "",
        "The messages, each as its whole relay frame (type ‖ peer id ‖ body):",
        "",
        *_hex_block([(f"{m['name']} ({m['from']})", m["frame"]) for m in pair["messages"]]),
        "",
        "Had `confirmP` failed, the device would have answered instead:",
        "",
        *_hex_block([("PAIR_ERROR", pair["wrong_code_error"]["frame"])]),
        "",
        "### A.5 Session (§6, §7)",
        "",
        *_hex_block(
            [
                ("prologue", sess["prologue"]),
                ("controller e.priv", sess["controller_ephemeral_priv"]),
                ("controller e.pub", sess["controller_ephemeral_pub"]),
                ("device e.priv", sess["device_ephemeral_priv"]),
                ("device e.pub", sess["device_ephemeral_pub"]),
                ("HANDSHAKE1", sess["handshake1"]),
                ("HANDSHAKE1 frame", sess["handshake1_frame"]),
                ("HANDSHAKE2", sess["handshake2"]),
                ("HANDSHAKE2 frame", sess["handshake2_frame"]),
                ("handshake hash", sess["handshake_hash"]),
                ("k controller->device", sess["k_controller_to_device"]),
                ("k device->controller", sess["k_device_to_controller"]),
            ]
        ),
        "",
        "Transport messages (SESSION payloads: kind 0x03 ‖ ciphertext ‖ tag), in order:",
        "",
    ]
    for m in sess["transport"]:
        lines += [
            f"From the {m['from']}, nonce {m['nonce']}: `{m['plaintext_json']}`",
            "",
            *_hex_block(
                [("plaintext", m["plaintext"]), ("payload", m["payload"]), ("frame", m["frame"])]
            ),
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def update_protocol(text: str, appendix: str) -> str:
    """Replace Appendix A (up to the next `## ` heading or the end) in PROTOCOL.md."""
    start = text.index(APPENDIX_HEADING)
    following = re.search(r"^## ", text[start + len(APPENDIX_HEADING) :], re.MULTILINE)
    end = start + len(APPENDIX_HEADING) + following.start() if following else len(text)
    tail = text[end:]
    return text[:start] + appendix + ("\n" + tail if tail else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--write", action="store_true", help="write the JSON and Appendix A of PROTOCOL.md"
    )
    args = parser.parse_args(argv)
    examples = generate()
    if not args.write:
        sys.stdout.write(render_json(examples))
        return 0
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(render_json(examples), encoding="utf-8")
    PROTOCOL_PATH.write_text(
        update_protocol(PROTOCOL_PATH.read_text(encoding="utf-8"), render_appendix(examples)),
        encoding="utf-8",
    )
    print(f"wrote {JSON_PATH.relative_to(ROOT)} and Appendix A of docs/PROTOCOL.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
