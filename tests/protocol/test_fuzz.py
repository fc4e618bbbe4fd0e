"""Arbitrary bytes into every parser and state machine: typed errors only, never a crash."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeseal_protocol import pairing
from homeseal_protocol.crypto import p256
from homeseal_protocol.crypto.noise import KeyPair
from homeseal_protocol.errors import PairingError, SessionError, StateError
from homeseal_protocol.ids import endpoint_id, parse_id, parse_setup_payload
from homeseal_protocol.pairing import ControllerPairing
from homeseal_protocol.session import InitiatorSession

CONTROLLER = KeyPair.from_private(bytes(range(100, 132)))
DEVICE = KeyPair.from_private(bytes(range(200, 232)))
FAST = settings(max_examples=150, deadline=None)


@FAST
@given(st.binary(max_size=200))
def test_decode_message_only_value_errors(data: bytes) -> None:
    try:
        message = pairing.decode_message(data)
    except ValueError:
        return
    assert message.encode() == data  # what decodes re-encodes to the same bytes


@FAST
@given(st.binary(max_size=200))
def test_controller_pairing_first_reply(data: bytes) -> None:
    controller = ControllerPairing(bytes(10), CONTROLLER.private, "20231187")
    controller.start()
    failed = False
    try:
        controller.receive(data)
    except PairingError:
        failed = True
    if failed:  # a failed attempt accepts nothing more
        with pytest.raises(StateError):
            controller.receive(data)


@FAST
@given(st.binary(max_size=120))
def test_session_receive_only_session_errors(data: bytes) -> None:
    session = InitiatorSession(
        CONTROLLER.private,
        DEVICE.public,
        endpoint_id(DEVICE.public),
        endpoint_id(CONTROLLER.public),
    )
    session.start()
    try:
        session.receive(data)
    except SessionError:
        assert session.closed
    else:  # only a real HANDSHAKE2 could open the session; random bytes cannot
        raise AssertionError("random bytes were accepted")


@FAST
@given(st.binary(min_size=60, max_size=70))
def test_decode_point_only_value_errors(data: bytes) -> None:
    try:
        point = p256.decode_point(data)
    except ValueError:
        return
    assert point.encode() == data


@FAST
@given(st.text(max_size=40))
def test_text_parsers_only_value_errors(text: str) -> None:
    for parse in (parse_id, parse_setup_payload):
        with contextlib.suppress(ValueError):
            parse(text)
