"""Noise (revision 34) against the cacophony vectors, and the state machine's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from homeseal_protocol.crypto.noise import (
    PATTERNS,
    CipherState,
    HandshakeState,
    KeyPair,
    parse_protocol_name,
)
from homeseal_protocol.errors import DecryptError, NoiseError
from tests.support import load_shared_vectors

CACOPHONY = "noise_cacophony_25519_ChaChaPoly_SHA256.json"


def _vectors() -> list[dict[str, Any]]:
    # Collected lazily so an absent ../shared skips (with a message) instead of erroring.
    return list(load_shared_vectors(CACOPHONY)["vectors"])


def _opt(vector: dict[str, Any], key: str) -> bytes | None:
    return bytes.fromhex(vector[key]) if key in vector else None


def _party(vector: dict[str, Any], side: str) -> HandshakeState:
    return HandshakeState(
        vector["protocol_name"],
        initiator=side == "init",
        prologue=bytes.fromhex(vector[f"{side}_prologue"]),
        s=_opt(vector, f"{side}_static"),
        e=_opt(vector, f"{side}_ephemeral"),
        rs=_opt(vector, f"{side}_remote_static"),
        psks=[bytes.fromhex(p) for p in vector.get(f"{side}_psks", [])],
    )


def test_cacophony_vectors_all_59() -> None:
    """Every message in order, the handshake hash, and transport both directions."""
    vectors = _vectors()
    assert len(vectors) == 59
    names = set()
    for vector in vectors:
        name = vector["protocol_name"]
        names.add(name)
        init, resp = _party(vector, "init"), _party(vector, "resp")
        n_handshake = len(init.pattern.messages)
        one_way = init.pattern.one_way
        transport: tuple[CipherState, CipherState, CipherState, CipherState] | None = None
        for index, message in enumerate(vector["messages"]):
            payload = bytes.fromhex(message["payload"])
            expected = bytes.fromhex(message["ciphertext"])
            if index < n_handshake:
                writer, reader = (init, resp) if index % 2 == 0 else (resp, init)
                assert writer.is_my_turn()
                assert not reader.is_my_turn()
                ciphertext = writer.write_message(payload)
                assert ciphertext == expected, f"{name} message {index}"
                assert reader.read_message(ciphertext) == payload, f"{name} message {index}"
                continue
            if transport is None:
                assert init.finished
                assert resp.finished
                assert init.get_handshake_hash() == bytes.fromhex(vector["handshake_hash"]), name
                assert resp.get_handshake_hash() == init.get_handshake_hash()
                transport = (*init.transport(), *resp.transport())
            i_send, i_recv, r_send, r_recv = transport
            from_initiator = one_way or index % 2 == 0
            sender, receiver = (i_send, r_recv) if from_initiator else (r_send, i_recv)
            ciphertext = sender.encrypt_with_ad(b"", payload)
            assert ciphertext == expected, f"{name} transport message {index}"
            assert receiver.decrypt_with_ad(b"", ciphertext) == payload
        assert transport is not None, f"{name}: vector has no transport messages"
    # Every pattern we know appears in the vectors, so none is untested.
    assert {n.removeprefix("Noise_").split("_")[0].split("psk")[0] for n in names} == set(PATTERNS)


def _kk_pair() -> tuple[HandshakeState, HandshakeState]:
    s_i, s_r = KeyPair.from_private(bytes(range(32))), KeyPair.from_private(bytes(range(1, 33)))
    name = "Noise_KK_25519_ChaChaPoly_SHA256"
    init = HandshakeState(name, True, b"p", s=s_i, rs=s_r.public)
    resp = HandshakeState(name, False, b"p", s=s_r, rs=s_i.public)
    return init, resp


def test_out_of_order_calls_raise_without_output() -> None:
    init, resp = _kk_pair()
    with pytest.raises(NoiseError, match="not our turn to read"):
        init.read_message(bytes(48))
    with pytest.raises(NoiseError, match="not our turn to write"):
        resp.write_message()
    with pytest.raises(NoiseError, match="not finished"):
        init.transport()
    resp.read_message(init.write_message())
    with pytest.raises(NoiseError, match="not our turn to write"):
        init.write_message()
    init.read_message(resp.write_message())
    with pytest.raises(NoiseError, match="already finished"):
        init.write_message()
    with pytest.raises(NoiseError, match="already finished"):
        resp.read_message(bytes(48))


def test_failed_read_poisons_handshake() -> None:
    init, resp = _kk_pair()
    message = bytearray(init.write_message())
    message[-1] ^= 1
    with pytest.raises(DecryptError):
        resp.read_message(bytes(message))
    with pytest.raises(NoiseError, match="already failed"):
        resp.read_message(bytes(message))
    with pytest.raises(NoiseError, match="already failed"):
        resp.write_message()


def test_truncated_handshake_message() -> None:
    init, resp = _kk_pair()
    message = init.write_message()
    with pytest.raises(NoiseError):
        resp.read_message(message[:20])


def test_wrong_prologue_fails() -> None:
    s_i, s_r = KeyPair.from_private(bytes(range(32))), KeyPair.from_private(bytes(range(1, 33)))
    name = "Noise_KK_25519_ChaChaPoly_SHA256"
    init = HandshakeState(name, True, b"one", s=s_i, rs=s_r.public)
    resp = HandshakeState(name, False, b"two", s=s_r, rs=s_i.public)
    with pytest.raises(DecryptError):
        resp.read_message(init.write_message())


def test_decrypt_failure_does_not_advance_nonce() -> None:
    init, resp = _kk_pair()
    resp.read_message(init.write_message())
    init.read_message(resp.write_message())
    send, _ = init.transport()
    _, receive = resp.transport()
    first = send.encrypt_with_ad(b"", b"hello")
    tampered = bytes([first[0] ^ 0x80]) + first[1:]
    with pytest.raises(DecryptError):
        receive.decrypt_with_ad(b"", tampered)
    assert receive.n == 0
    with pytest.raises(DecryptError):
        receive.decrypt_with_ad(b"", first[:10])
    assert receive.n == 0
    assert receive.decrypt_with_ad(b"", first) == b"hello"
    assert receive.n == 1
    with pytest.raises(DecryptError):  # replay
        receive.decrypt_with_ad(b"", first)


def test_nonce_exhaustion_and_rekey() -> None:
    cipher = CipherState()
    cipher.initialize_key(bytes(32))
    cipher.set_nonce(2**64 - 1)
    with pytest.raises(NoiseError, match="exhausted"):
        cipher.encrypt_with_ad(b"", b"x")
    other = CipherState()
    other.initialize_key(bytes(32))
    cipher.set_nonce(5)
    other.set_nonce(5)
    cipher.rekey()
    assert cipher.k != bytes(32)
    assert cipher.n == 5
    with pytest.raises(DecryptError):
        other.decrypt_with_ad(b"", cipher.encrypt_with_ad(b"", b"x"))


def test_cipher_without_key_is_identity() -> None:
    cipher = CipherState()
    cipher.initialize_key(None)
    assert cipher.encrypt_with_ad(b"ad", b"plain") == b"plain"
    assert not cipher.has_key()
    with pytest.raises(NoiseError):
        cipher.rekey()


@pytest.mark.parametrize(
    "name",
    [
        "Noise_KK_25519_AESGCM_SHA256",
        "Noise_ZZ_25519_ChaChaPoly_SHA256",
        "Noise_NNpsk9_25519_ChaChaPoly_SHA256",
        "Noise_KK_448_ChaChaPoly_SHA256",
        "",
    ],
)
def test_unsupported_protocol_names(name: str) -> None:
    with pytest.raises(NoiseError):
        parse_protocol_name(name)


def test_psk_count_and_size_checked() -> None:
    name = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
    with pytest.raises(NoiseError, match="needs 1 PSK"):
        HandshakeState(name, True)
    with pytest.raises(NoiseError, match="32 bytes"):
        HandshakeState(name, True, psks=[b"short"])
    assert parse_protocol_name("Noise_XXpsk3_25519_ChaChaPoly_SHA256").messages[2] == (
        "s",
        "se",
        "psk",
    )


def test_missing_keys_refused() -> None:
    with pytest.raises(NoiseError, match="pre-message"):
        HandshakeState("Noise_KK_25519_ChaChaPoly_SHA256", True, s=bytes(32))
    hs = HandshakeState("Noise_XX_25519_ChaChaPoly_SHA256", True)
    resp = HandshakeState("Noise_XX_25519_ChaChaPoly_SHA256", False)
    resp.read_message(hs.write_message())
    with pytest.raises(NoiseError, match="no static key"):
        resp.write_message()


def test_low_order_public_key_refused() -> None:
    name = "Noise_NK_25519_ChaChaPoly_SHA256"
    init = HandshakeState(name, True, rs=bytes(32))  # the all-zero (low-order) point
    with pytest.raises(NoiseError, match="low-order"):
        init.write_message()


def test_failed_write_poisons_handshake() -> None:
    init = HandshakeState("Noise_NK_25519_ChaChaPoly_SHA256", True, rs=bytes(32))
    with pytest.raises(NoiseError, match="low-order"):
        init.write_message()
    with pytest.raises(NoiseError, match="already failed"):
        init.write_message()


def test_oversized_messages_refused() -> None:
    init, resp = _kk_pair()
    with pytest.raises(NoiseError, match="65535"):
        init.write_message(bytes(65535))
    init, resp = _kk_pair()
    with pytest.raises(NoiseError, match="65535"):
        resp.read_message(bytes(65536))
