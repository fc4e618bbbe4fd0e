"""Fuzz the controller-side parsers of bytes that arrive from the relay
(homeseal_protocol): envelope, application messages, pairing messages
and the pairing state machine, and the session's receive().

Property: any input gives a parsed value or the module's documented error
(EnvelopeError, MessageError, ValueError / PairingError, SessionError) — never another
exception, and never a plaintext from bytes that were not encrypted by the peer.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import assume, example, given
from hypothesis import strategies as st

from homeseal_protocol import envelope as cenv
from homeseal_protocol import messages, pairing, session
from homeseal_protocol.crypto.noise import HandshakeState
from homeseal_protocol.errors import PairingError, PairingFailure
from homeseal_protocol.ids import endpoint_id

from .profile import fuzz
from .strategies import frames, mutations, raw

# JSON-ish inputs: valid messages with wrong values, odd nesting, huge numbers.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGE_KEYS = ["t", "id", "key", "action", "brightness", "s", "ok", "error", "fw", "model",
                "name", "entities", "kind", "on"]  # fmt: skip
T_VALUES = ["describe", "state", "command", "result", "ping", "pong", "unpair", "x"]


@st.composite
def json_messages(draw: st.DrawFn) -> bytes:
    obj = draw(st.dictionaries(st.sampled_from(MESSAGE_KEYS), json_values, max_size=6))
    if draw(st.booleans()):
        obj["t"] = draw(st.sampled_from(T_VALUES))
    if obj.get("t") == "state" and draw(st.booleans()):
        obj["s"] = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
    if obj.get("t") == "describe" and draw(st.booleans()):
        obj["entities"] = draw(
            st.lists(
                st.dictionaries(
                    st.sampled_from(["key", "kind", "name", "unit"]),
                    json_values | st.sampled_from(["switch", "light", "ab"]),
                    max_size=4,
                ),
                max_size=3,
            )
        )
    text = json.dumps(obj, allow_nan=True)
    return text.encode()


DEEP = b'{"t":"ping","id":' + b"[" * 1500 + b"]" * 1500 + b"}"
app_bytes = raw | json_messages() | st.sampled_from([DEEP, b"[" * 3072, b"\xff\xfe", b"{}"])

ENVELOPE_ERRORS = (cenv.EnvelopeError,)


@fuzz()
@given(data=raw | frames() | st.binary(min_size=4090, max_size=4200))
@example(data=bytes(4097))
def test_decode_frame(data: bytes) -> None:
    try:
        frame = cenv.decode_frame(data)
    except cenv.EnvelopeError as err:
        assert err.close_code in (cenv.CloseCode.PROTOCOL_ERROR, cenv.CloseCode.TOO_BIG)  # noqa: PT017
        return
    assert frame.type in cenv.CONTROLLER_INBOUND
    assert cenv.encode_frame(frame.type, frame.peer, frame.payload) == data


@fuzz()
@given(data=app_bytes)
@example(data=b'{"t":"result","id":1,"ok":true,"error":1e999}')
# A state value too large for a float once raised OverflowError, not MessageError.
@example(data=b'{"t":"state","s":{"a":1' + b"0" * 400 + b"}}")
@example(data=DEEP)
def test_parse_device_message(data: bytes) -> None:
    try:
        msg = messages.parse_device_message(data)
    except messages.MessageError:
        return
    # What parses re-encodes to something that parses to the same value.
    assert messages.parse_device_message(messages.encode(msg)) == msg


@fuzz()
@given(data=app_bytes)
@example(
    data=b'{"t":"command","id":1,"key":"a","action":"turn_on","brightness":1' + b"0" * 400 + b"}"
)
def test_parse_controller_message(data: bytes) -> None:
    try:
        msg = messages.parse_controller_message(data)
    except messages.MessageError:
        return
    assert messages.parse_controller_message(messages.encode(msg)) == msg


PAIRING_KINDS = st.sampled_from([1, 2, 3, 4, 5, 6, 0x7F]) | st.integers(0, 255)
pairing_bytes = raw | st.builds(
    lambda k, body: bytes((k,)) + body,
    PAIRING_KINDS,
    st.sampled_from([1, 2, 6, 22, 48, 65, 80, 97]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)
    )
    | st.binary(max_size=120),
)


@fuzz()
@given(data=pairing_bytes)
@example(data=b"\x02" + (1000).to_bytes(4, "big") + b"\x10" + bytes(16) + b"\x14")
@example(data=b"\x02" + bytes(5))
def test_decode_pairing_message(data: bytes) -> None:
    try:
        msg = pairing.decode_message(data)
    except ValueError:
        return
    assert msg.encode() == data


CONTROLLER_KEY = X25519PrivateKey.from_private_bytes(bytes([9] * 32))
DEVICE_KEY = X25519PrivateKey.from_private_bytes(bytes([5] * 32))
DEVICE_PUB = DEVICE_KEY.public_key().public_bytes_raw()
DEVICE_ID = endpoint_id(DEVICE_PUB)
CONTROLLER_PUB = CONTROLLER_KEY.public_key().public_bytes_raw()
CONTROLLER_ID = endpoint_id(CONTROLLER_PUB)


def _param_response_is_runnable(data: bytes) -> bool:
    try:
        msg = pairing.decode_message(data)
    except ValueError:
        return False
    return isinstance(msg, pairing.PbkdfParamResponse)


@fuzz()
@given(data=pairing_bytes)
def test_controller_pairing_awaiting_params(data: bytes) -> None:
    # A well-formed PBKDF_PARAM_RESPONSE would run PBKDF2 (up to 10^6 iterations):
    # the parameter checks are covered by test_decode_pairing_message and the suite below.
    assume(not _param_response_is_runnable(data))
    attempt = pairing.ControllerPairing(DEVICE_ID, CONTROLLER_KEY, "20231187")
    attempt.start()
    try:
        attempt.receive(data)
    except PairingError as err:
        assert isinstance(err.failure, PairingFailure)  # noqa: PT017
        assert not attempt.done
        return
    raise AssertionError(f"accepted {data.hex()} as PBKDF parameters")


@fuzz(0.2)
@given(data=pairing_bytes | st.binary(min_size=98, max_size=98).map(lambda b: b"\x04" + b[1:]))
@example(data=b"\x04\x04" + bytes(96))  # a share that is not on the curve
@example(data=b"\x04" + bytes(97))  # identity / wrong prefix
def test_controller_pairing_awaiting_pake2(data: bytes) -> None:
    attempt = pairing.ControllerPairing(DEVICE_ID, CONTROLLER_KEY, "20231187")
    attempt.start()
    params = pairing.PbkdfParamResponse(1000, b"s" * 16, 20).encode()
    assert attempt.receive(params) is not None
    try:
        attempt.receive(data)
    except PairingError:
        assert not attempt.done
        return
    raise AssertionError(f"accepted {data.hex()} as PAKE2 without the setup code")


def _open_pair() -> tuple[session.InitiatorSession, object]:
    """An open controller session and the device's transport CipherState for sending."""
    ctl = session.InitiatorSession(CONTROLLER_KEY, DEVICE_PUB, DEVICE_ID, CONTROLLER_ID)
    hs1 = ctl.start()
    responder = HandshakeState(
        session.PROTOCOL_NAME,
        initiator=False,
        prologue=session.prologue(DEVICE_ID, CONTROLLER_ID),
        s=DEVICE_KEY,
        rs=CONTROLLER_PUB,
    )
    responder.read_message(hs1[1:])
    hs2 = responder.write_message(b"")
    assert ctl.receive(bytes((session.Kind.HANDSHAKE2,)) + hs2) is None
    device_send, _ = responder.transport()
    return ctl, device_send


SESSION_KINDS = st.sampled_from([1, 2, 3, 4]) | st.integers(0, 255)
session_bytes = raw | st.builds(
    lambda k, body: bytes((k,)) + body,
    SESSION_KINDS,
    st.sampled_from([0, 1, 15, 16, 17, 33, 48, 64]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)
    ),
)


@fuzz()
@given(data=session_bytes)
def test_session_receive_while_handshaking(data: bytes) -> None:
    ctl = session.InitiatorSession(CONTROLLER_KEY, DEVICE_PUB, DEVICE_ID, CONTROLLER_ID)
    ctl.start()
    try:
        ctl.receive(data)
    except session.SessionError:
        assert ctl.closed
        return
    raise AssertionError("random bytes completed a KK handshake")


@fuzz(0.5)
@given(data=session_bytes, garbage_first=st.booleans())
def test_session_receive_when_open(data: bytes, garbage_first: bool) -> None:
    ctl, device_send = _open_pair()
    try:
        plaintext = ctl.receive(data)
    except session.SessionError:
        assert ctl.closed
        # Closed for good: later input is refused, never decrypted.
        try:
            ctl.receive(data)
        except session.SessionClosed:
            return
        raise AssertionError("a failed session kept receiving") from None
    assert plaintext is None, "random bytes decrypted as a transport message"
    _assert_ignored_handshake2(ctl, data, _genuine(device_send))


def _assert_ignored_handshake2(ctl: session.InitiatorSession, data: bytes, genuine: bytes) -> None:
    """The one input an open session lets pass without closing: a HANDSHAKE2 (the
    answer to a replayed HANDSHAKE1, L2), which must leave the session as it was."""
    assert data[:1] == bytes((session.Kind.HANDSHAKE2,)), "bad input passed without an error"
    assert ctl.receive(genuine) == b'{"t":"ping","id":7}'


def _genuine(device_send: object) -> bytes:
    return bytes((session.Kind.TRANSPORT,)) + device_send.encrypt_with_ad(  # type: ignore[attr-defined]
        b"", b'{"t":"ping","id":7}'
    )


def test_session_genuine_transport_decrypts() -> None:
    """The fixture of the tamper test is sound: the untouched message decrypts."""
    ctl, device_send = _open_pair()
    genuine = _genuine(device_send)
    assert ctl.receive(genuine) == b'{"t":"ping","id":7}'


@fuzz(0.5)
@given(data=st.data())
def test_session_tampered_transport(data: st.DataObject) -> None:
    ctl, device_send = _open_pair()
    genuine = _genuine(device_send)
    tampered = data.draw(mutations(genuine))
    assume(tampered != genuine)
    try:
        plaintext = ctl.receive(tampered)
    except session.SessionError:
        assert ctl.closed
        return
    assert plaintext is None, "a tampered transport message was accepted"
    _assert_ignored_handshake2(ctl, tampered, genuine)
