"""Firmware Noise (homeseal/noise.py) on the real MicroPython unix port.

All 59 cacophony `*_25519_ChaChaPoly_SHA256` vectors (one-way, interactive, deferred
and psk patterns), then the state machine's refusals and the CipherState limits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.support import load_shared_vectors, run_micropython, shared_vector_path

pytestmark = pytest.mark.micropython

MPY = Path(__file__).parent / "mpy"
CACOPHONY = "noise_cacophony_25519_ChaChaPoly_SHA256.json"


def test_cacophony_vectors_all_pass() -> None:
    names = [v["protocol_name"] for v in load_shared_vectors(CACOPHONY)["vectors"]]
    assert len(names) == 59
    out = run_micropython(MPY / "noise_cacophony.py", str(shared_vector_path(CACOPHONY)))
    lines = out.strip().split("\n")
    failures = [line for line in lines if not line.startswith(("PASS ", "total "))]
    assert failures == []
    assert lines == [f"PASS {n}" for n in names] + ["total 59"]


def _rekey_expected() -> str:
    # Rekey (Noise section 4.2): k = ENCRYPT(k, 2^64 - 1, zerolen, zeros)[:32].
    nonce = b"\x00" * 4 + (2**64 - 1).to_bytes(8, "little")
    return ChaCha20Poly1305(bytes(range(32))).encrypt(nonce, bytes(32), b"")[:32].hex()


def test_state_machine_refusals_and_limits() -> None:
    lines = run_micropython(MPY / "noise_negative.py").strip().split("\n")
    got = dict(line.split(" ", 1) for line in lines)
    expected = {
        "responder_writes_first": "RuntimeError",
        "initiator_reads_first": "RuntimeError",
        "msg1_len": "48",
        "initiator_writes_twice": "RuntimeError",
        "split_before_finished": "RuntimeError",
        "hash_before_finished": "RuntimeError",
        "read_msg1": "ok",
        "read_msg2": "ok",
        "write_after_finished": "RuntimeError",
        "read_after_finished": "RuntimeError",
        "hashes_equal": "True",
        "split_is_transport": "True",
        "msg1_low_order_e": "ValueError",
        "write_too_long": "ValueError",
        "transport_tampered": "ValueError",
        "nonce_after_failure": "0",
        "transport_truncated": "ValueError",
        "transport_reordered": "ValueError",
        "transport_first": "ok",
        "transport_replayed": "ValueError",
        "transport_second": "ok",
        "transport_back": "ok",
        "transport_wrong_ad": "ValueError",
        "encrypt_last_nonce": "ok",
        "encrypt_max_nonce": "ValueError",
        "decrypt_max_nonce": "ValueError",
        "nonce_bytes_1": "000000000807060504030201",
        "rekey_key": _rekey_expected(),
        "rekey_keeps_nonce": "7",
        "no_key_passthrough": "True",
        "kk_without_rs": "ValueError",
        "kk_without_s": "ValueError",
        "bad_static_len": "ValueError",
        "psk_missing": "ValueError",
        "psk_short": "ValueError",
        "psk_unexpected": "ValueError",
        "xx_write_s_without_key": "ValueError",
        "pattern_count": "38",
        "precomputed_e_same": "True",
        "generate_keypair": "True",
        "precomputed_ss_same": "True",
        "precomputed_ss_initiator_same": "True",
        "wrong_ss_differs": "True",
        "ss_short": "ValueError",
    }
    for bad in ("flip_e", "flip_tag", "truncated", "e_only", "empty", "extra_byte", "too_long"):
        expected[f"msg1_{bad}"] = "ValueError"
        # A failed read ends the handshake: nothing more is produced.
        expected[f"msg1_{bad}_then_write"] = "RuntimeError"
    for name in (
        "Noise_KK_448_ChaChaPoly_SHA256",
        "Noise_KK_25519_AESGCM_SHA256",
        "Noise_ZZ_25519_ChaChaPoly_SHA256",
        "Noise_KKpsk9_25519_ChaChaPoly_SHA256",
        "Noise_KKfallback_25519_ChaChaPoly_SHA256",
        "Noise_KKpskx_25519_ChaChaPoly_SHA256",
        "KK",
    ):
        expected[f"name_{name}"] = "ValueError"
    assert got == expected
