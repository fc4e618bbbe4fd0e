"""The controller's Noise KK session (PROTOCOL §6) against a responder built from noise.py."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from homeseal_protocol import session as session_mod
from homeseal_protocol.crypto.noise import CipherState, HandshakeState, KeyPair
from homeseal_protocol.errors import (
    DecryptFailed,
    HandshakeFailed,
    LimitReached,
    SessionClosed,
    SessionProtocolError,
    SessionReset,
    StateError,
)
from homeseal_protocol.ids import endpoint_id
from homeseal_protocol.session import InitiatorSession, ResetReason

CONTROLLER = KeyPair.from_private(bytes(range(100, 132)))
DEVICE = KeyPair.from_private(bytes(range(200, 232)))
CONTROLLER_ID = endpoint_id(CONTROLLER.public)
DEVICE_ID = endpoint_id(DEVICE.public)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Responder:
    """The device's half, enough to drive the initiator: KK responder + transport."""

    def __init__(self, device: KeyPair = DEVICE, controller_pub: bytes = CONTROLLER.public) -> None:
        self.hs = HandshakeState(
            session_mod.PROTOCOL_NAME,
            initiator=False,
            prologue=session_mod.prologue(DEVICE_ID, CONTROLLER_ID),
            s=device,
            rs=controller_pub,
        )
        self.send: CipherState | None = None
        self.recv: CipherState | None = None

    def accept(self, handshake1: bytes) -> bytes:
        assert handshake1[0] == 0x01
        assert len(handshake1) == 49
        assert self.hs.read_message(handshake1[1:]) == b""
        reply = b"\x02" + self.hs.write_message(b"")
        self.send, self.recv = self.hs.transport()
        return reply

    def encrypt(self, plaintext: bytes) -> bytes:
        assert self.send is not None
        return b"\x03" + self.send.encrypt_with_ad(b"", plaintext)

    def decrypt(self, payload: bytes) -> bytes:
        assert self.recv is not None
        assert payload[0] == 0x03
        return self.recv.decrypt_with_ad(b"", payload[1:])


def _open(clock: Clock | None = None) -> tuple[InitiatorSession, Responder]:
    session = InitiatorSession(
        CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID, clock=clock or Clock()
    )
    device = Responder()
    assert session.receive(device.accept(session.start())) is None
    assert session.is_open
    return session, device


def test_handshake_and_transport_both_ways() -> None:
    session, device = _open()
    assert session.handshake_hash == device.hs.get_handshake_hash()
    for i in range(50):
        assert device.decrypt(session.encrypt(b'{"t":"ping","id":%d}' % i)) == (
            b'{"t":"ping","id":%d}' % i
        )
        assert session.receive(device.encrypt(b'{"t":"pong","id":%d}' % i)) == (
            b'{"t":"pong","id":%d}' % i
        )
    assert session.messages_sent == 50
    assert session.messages_received == 50


def test_constructor_accepts_key_object_and_checks_ids() -> None:
    key = X25519PrivateKey.from_private_bytes(CONTROLLER.private)
    InitiatorSession(key, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    with pytest.raises(ValueError, match="device static key"):
        InitiatorSession(key, DEVICE.public, CONTROLLER_ID, CONTROLLER_ID)
    with pytest.raises(ValueError, match="controller static key"):
        InitiatorSession(key, DEVICE.public, DEVICE_ID, DEVICE_ID)


def test_prologue_and_handshake1_layout() -> None:
    assert session_mod.prologue(DEVICE_ID, CONTROLLER_ID) == (
        b"HomeSeal v1 session" + DEVICE_ID + CONTROLLER_ID
    )
    session = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    first = session.start()
    assert first[0] == 0x01
    assert len(first) == 1 + 48


def _corruptions(payload: bytes) -> list[tuple[str, bytes]]:
    return [
        ("flipped bit", payload[:5] + bytes([payload[5] ^ 4]) + payload[6:]),
        ("flipped tag", payload[:-1] + bytes([payload[-1] ^ 1])),
        ("truncated", payload[:-1]),
        ("truncated below tag", payload[:10]),
        ("kind only", payload[:1]),
    ]


@pytest.mark.parametrize("index", range(5))
def test_tampered_transport_closes_session(index: int) -> None:
    session, device = _open()
    payload = device.encrypt(b'{"t":"ping","id":1}')
    _, bad = _corruptions(payload)[index]
    with pytest.raises(DecryptFailed) as err:
        session.receive(bad)
    assert err.value.reply == bytes((0x04, ResetReason.DECRYPT_FAILED))
    assert session.closed
    # Once failed, always failed: even the genuine message is refused now.
    with pytest.raises(SessionClosed):
        session.receive(payload)
    with pytest.raises(SessionClosed):
        session.encrypt(b"{}")


def test_replayed_transport_rejected() -> None:
    session, device = _open()
    payload = device.encrypt(b"one")
    assert session.receive(payload) == b"one"
    with pytest.raises(DecryptFailed):
        session.receive(payload)
    assert session.closed


def test_reordered_transport_rejected() -> None:
    session, device = _open()
    first, second = device.encrypt(b"one"), device.encrypt(b"two")
    with pytest.raises(DecryptFailed):
        session.receive(second)
    with pytest.raises(SessionClosed):
        session.receive(first)


def test_controller_messages_cannot_be_reflected() -> None:
    session, _ = _open()
    own = session.encrypt(b"mine")
    with pytest.raises(DecryptFailed):
        session.receive(own)


def test_reset_raises_with_its_reason() -> None:
    session, _ = _open()
    with pytest.raises(SessionReset) as err:
        session.receive(bytes((0x04, ResetReason.HANDSHAKE_FAILED)))
    assert err.value.reason == ResetReason.HANDSHAKE_FAILED
    assert session.closed
    session = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    session.start()
    with pytest.raises(SessionReset) as err:
        session.receive(b"\x04\x03")
    assert err.value.reason == ResetReason.NOT_PAIRED
    assert "not_paired" in str(err.value)


# A RESET is reason only (§6): it once carried the device's s.pub, which nothing can
# trust (L3 in SECURITY.md); that form is malformed now.
@pytest.mark.parametrize(
    "payload", [b"\x04", b"\x04\x02" + bytes(31), b"\x04\x02" + bytes(32), b"\x04\x02\x00"]
)
def test_malformed_reset(payload: bytes) -> None:
    session, _ = _open()
    with pytest.raises(SessionProtocolError, match="RESET"):
        session.receive(payload)
    assert session.closed


def test_wrong_device_key_handshake_fails() -> None:
    session = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    first = session.start()
    impostor = Responder(device=KeyPair.from_private(bytes(range(1, 33))))
    # The impostor cannot even read HANDSHAKE1 (ss differs) ...
    with pytest.raises(Exception, match="tag"):
        impostor.accept(first)
    # ... and anything it sends as HANDSHAKE2 does not authenticate.
    with pytest.raises(HandshakeFailed):
        session.receive(b"\x02" + bytes(48))
    assert session.closed


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", SessionProtocolError),
        (b"\x09" + bytes(48), SessionProtocolError),
        (b"\x01" + bytes(48), SessionProtocolError),  # HANDSHAKE1 to the initiator
        (b"\x03" + bytes(20), SessionProtocolError),  # TRANSPORT before HANDSHAKE2
        (b"\x02" + bytes(47), HandshakeFailed),
        (b"\x02" + bytes(49), HandshakeFailed),
    ],
)
def test_bad_payloads_while_handshaking(payload: bytes, error: type[Exception]) -> None:
    session = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    session.start()
    with pytest.raises(error):
        session.receive(payload)
    assert session.closed


def test_l2_a_handshake2_while_open_changes_nothing() -> None:
    """The answer to a replayed HANDSHAKE1 (or a replayed HANDSHAKE2) reaches an open
    session: the device kept this session (§6.2), so the session ignores it and goes on."""
    session = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    device = Responder()
    handshake1 = session.start()
    handshake2 = device.accept(handshake1)
    session.receive(handshake2)
    assert session.receive(handshake2) is None
    assert session.receive(Responder().accept(handshake1)) is None
    assert session.is_open
    assert session.messages_received == 0
    assert session.messages_sent == 0


def test_out_of_order_calls() -> None:
    session = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    with pytest.raises(SessionProtocolError, match="not open"):
        session.encrypt(b"{}")
    session.start()
    with pytest.raises(StateError, match="already"):
        session.start()
    with pytest.raises(SessionProtocolError, match="not open"):
        session.encrypt(b"{}")
    session.close()
    with pytest.raises(SessionClosed):
        session.start()


def test_plaintext_size_limit() -> None:
    session, device = _open()
    assert device.decrypt(session.encrypt(b"x" * 3072)) == b"x" * 3072
    with pytest.raises(ValueError, match="3072"):
        session.encrypt(b"x" * 3073)
    assert session.is_open  # a refused send does not end the session


def test_rekey_by_count_and_hard_limit() -> None:
    session, device = _open()
    assert not session.needs_rekey
    assert session._send is not None
    session._send.set_nonce(session_mod.REKEY_MESSAGES - 1)
    assert device.send is not None
    assert device.recv is not None
    device.recv.set_nonce(session_mod.REKEY_MESSAGES - 1)
    device.decrypt(session.encrypt(b"a"))
    assert session.needs_rekey
    session._send.set_nonce(session_mod.MAX_MESSAGES)
    with pytest.raises(LimitReached):
        session.encrypt(b"a")
    assert session.closed


def test_receive_counter_limit() -> None:
    session, device = _open()
    assert session._receive is not None
    assert device.send is not None
    session._receive.set_nonce(session_mod.MAX_MESSAGES)
    device.send.set_nonce(session_mod.MAX_MESSAGES)
    with pytest.raises(LimitReached):
        session.receive(device.encrypt(b"late"))


def test_rekey_by_age_and_hard_limit() -> None:
    clock = Clock()
    session, device = _open(clock)
    clock.now += 23 * 3600 - 1
    assert not session.needs_rekey
    clock.now += 1
    assert session.needs_rekey
    device.decrypt(session.encrypt(b"still fine"))
    clock.now += 3600
    with pytest.raises(LimitReached, match="24 hours"):
        session.encrypt(b"too old")
    assert session.closed
    assert not session.needs_rekey
