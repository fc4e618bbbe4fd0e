"""The controller's pairing state machine (PROTOCOL §5) against a CPython device double."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from homeseal_protocol import pairing
from homeseal_protocol.errors import PairingFailure, StateError
from homeseal_protocol.ids import endpoint_id
from homeseal_protocol.pairing import (
    ControllerPairing,
    ErrorCode,
    PairErrorMessage,
    PbkdfParamResponse,
)
from tests.support import raises_pairing

from .device_double import DevicePairing

CONTROLLER = bytes(range(100, 132))
DEVICE = bytes(range(200, 232))
CODE = "20231187"


def _run(controller: ControllerPairing, device: DevicePairing) -> None:
    message: bytes | None = controller.start()
    while message is not None:
        reply = device.handle(message, controller.controller_id)
        assert reply is not None
        message = controller.receive(reply)


def test_pairing_succeeds_and_pins_both_keys() -> None:
    device = DevicePairing(DEVICE, CODE)
    controller = ControllerPairing(device.device_id, CONTROLLER, CODE)
    _run(controller, device)
    assert controller.done
    assert controller.device_static_pub == device.static_pub
    assert controller.attempts_left == 20
    assert controller.iterations == 1000
    assert device.controller_pub is not None
    assert endpoint_id(device.controller_pub) == controller.controller_id
    assert device.failures == 0
    with pytest.raises(StateError):
        controller.receive(b"\x06" + bytes(48))


def test_wrong_code_device_side_and_controller_side() -> None:
    device = DevicePairing(DEVICE, CODE)
    controller = ControllerPairing(device.device_id, CONTROLLER, "20231188")
    with raises_pairing(PairingFailure.WRONG_CODE) as err:
        _run(controller, device)
    # The controller sees confirmV fail first and tells the device.
    assert err.value.failure is PairingFailure.WRONG_CODE
    assert not err.value.from_device
    assert err.value.reply == bytes((0x7F, ErrorCode.WRONG_CODE, 0))
    assert device.failures == 1
    assert "20231188" not in str(err.value)
    with pytest.raises(StateError):
        controller.receive(b"\x04" + bytes(97))


def test_device_reported_errors_are_typed() -> None:
    for code in ErrorCode:
        controller = ControllerPairing(bytes(10), CONTROLLER, CODE)
        controller.start()
        with raises_pairing(PairingFailure[code.name]) as err:
            controller.receive(PairErrorMessage(code, 7).encode())
        assert err.value.failure == code.name.lower()
        assert err.value.attempts_left == 7
        assert err.value.from_device
        assert err.value.reply is None
    # An unknown code from the device is a bad message, not a crash.
    controller = ControllerPairing(bytes(10), CONTROLLER, CODE)
    controller.start()
    with raises_pairing(PairingFailure.BAD_MESSAGE) as unknown:
        controller.receive(bytes((0x7F, 99, 0)))
    assert unknown.value.from_device


def test_lockout_after_limit() -> None:
    device = DevicePairing(DEVICE, CODE, limit=3)
    for attempt in range(3):
        controller = ControllerPairing(device.device_id, CONTROLLER, "11112222")
        with raises_pairing(PairingFailure.WRONG_CODE):
            _run(controller, device)
        assert device.failures == attempt + 1
    controller = ControllerPairing(device.device_id, CONTROLLER, CODE)
    with raises_pairing(PairingFailure.LOCKED_OUT) as err:
        _run(controller, device)
    assert err.value.attempts_left == 0


@pytest.mark.parametrize(
    ("iterations", "salt", "message"),
    [
        (999, b"s" * 16, "iterations"),
        (1_000_001, b"s" * 16, "iterations"),
        (1000, b"s" * 15, "salt"),
        (1000, b"s" * 33, "salt"),
    ],
)
def test_pbkdf_params_validated(iterations: int, salt: bytes, message: str) -> None:
    controller = ControllerPairing(bytes(10), CONTROLLER, CODE)
    controller.start()
    with raises_pairing(PairingFailure.BAD_MESSAGE, match=message) as err:
        controller.receive(PbkdfParamResponse(iterations, salt, 20).encode())
    assert err.value.reply == bytes((0x7F, ErrorCode.BAD_MESSAGE, 0))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02",
        b"\x02\x00\x00\x03\xe8\x10" + b"s" * 15 + b"\x14",  # salt_len says 16, 15 given
        b"\x02\x00\x00\x03\xe8\x10" + b"s" * 17 + b"\x14",  # one byte too many
        b"\x04" + bytes(97),  # PAKE2 before the parameters
        b"\x06" + bytes(48),  # PAIR_DONE out of order
        b"\x01\x01",  # a request echoed back
        b"\x55",  # unknown type
        b"\x7f\x02",  # PAIR_ERROR too short
    ],
)
def test_malformed_or_out_of_order_first_reply(data: bytes) -> None:
    controller = ControllerPairing(bytes(10), CONTROLLER, CODE)
    controller.start()
    with raises_pairing(PairingFailure.BAD_MESSAGE) as err:
        controller.receive(data)
    assert err.value.reply is not None
    with pytest.raises(StateError):
        controller.receive(data)


def test_out_of_order_calls() -> None:
    controller = ControllerPairing(bytes(10), CONTROLLER, CODE)
    with pytest.raises(StateError):
        controller.receive(b"\x02")
    controller.start()
    with pytest.raises(StateError):
        controller.start()


def _to_pake2(device: DevicePairing) -> tuple[ControllerPairing, bytes]:
    controller = ControllerPairing(device.device_id, CONTROLLER, CODE)
    params = device.handle(controller.start(), controller.controller_id)
    assert params is not None
    pake1 = controller.receive(params)
    assert pake1 is not None
    pake2 = device.handle(pake1, controller.controller_id)
    assert pake2 is not None
    return controller, pake2


def test_tampered_pake2_is_rejected() -> None:
    device = DevicePairing(DEVICE, CODE)
    controller, pake2 = _to_pake2(device)
    tampered = pake2[:-1] + bytes([pake2[-1] ^ 1])  # confirmV
    with raises_pairing(PairingFailure.WRONG_CODE):
        controller.receive(tampered)
    controller, pake2 = _to_pake2(device)
    off_curve = pake2[:65] + bytes([pake2[65] ^ 1]) + pake2[66:]  # shareV's y
    with raises_pairing(PairingFailure.BAD_MESSAGE, match="invalid PAKE2"):
        controller.receive(off_curve)


def test_tampered_pair_done_and_identity_mismatch() -> None:
    device = DevicePairing(DEVICE, CODE)
    controller, pake2 = _to_pake2(device)
    pake3 = controller.receive(pake2)
    assert pake3 is not None
    done = device.handle(pake3, controller.controller_id)
    assert done is not None
    with raises_pairing(PairingFailure.BAD_MESSAGE, match="authenticate"):
        controller.receive(done[:-1] + bytes([done[-1] ^ 1]))

    # A device that seals a key which is not the one its id names.
    impostor = DevicePairing(DEVICE, CODE)
    impostor.static_pub = bytes(range(32))
    controller, pake2 = _to_pake2(impostor)
    pake3 = controller.receive(pake2)
    assert pake3 is not None
    done = impostor.handle(pake3, controller.controller_id)
    assert done is not None
    with raises_pairing(PairingFailure.IDENTITY_MISMATCH) as err:
        controller.receive(done)
    assert err.value.reply == bytes((0x7F, ErrorCode.IDENTITY_MISMATCH, 0))
    assert controller.device_static_pub is None


def test_message_encodings() -> None:
    assert pairing.PbkdfParamRequest().encode() == b"\x01\x01"
    response = PbkdfParamResponse(100_000, bytes(range(16)), 20)
    encoded = response.encode()
    assert encoded == b"\x02\x00\x01\x86\xa0\x10" + bytes(range(16)) + b"\x14"
    assert pairing.decode_message(encoded) == response
    for message in (
        pairing.Pake1(bytes(65)),
        pairing.Pake2(bytes(65), bytes(32)),
        pairing.Pake3(bytes(32), bytes(48)),
        pairing.PairDone(bytes(48)),
        PairErrorMessage(3, 0),
        pairing.PbkdfParamRequest(2),
    ):
        assert pairing.decode_message(message.encode()) == message
    with pytest.raises(ValueError, match="shareP"):
        pairing.Pake1(bytes(64)).encode()


def test_sealing_binds_ids() -> None:
    k_p, k_v = pairing.pairing_keys(bytes(32))
    assert k_p != k_v
    sealed = pairing.seal_static(k_p, b"P" * 10, b"V" * 10, bytes(range(32)))
    assert len(sealed) == 48
    assert pairing.unseal_static(k_p, b"P" * 10, b"V" * 10, sealed) == bytes(range(32))
    for key, idp, idv in ((k_v, b"P" * 10, b"V" * 10), (k_p, b"V" * 10, b"P" * 10)):
        with pytest.raises(ValueError, match="authenticate"):
            pairing.unseal_static(key, idp, idv, sealed)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="device id"):
        ControllerPairing(bytes(9), CONTROLLER, CODE)
    with pytest.raises(ValueError, match="too easy"):
        ControllerPairing(bytes(10), CONTROLLER, "12345678")


@pytest.mark.parametrize(
    ("field", "tamper"),
    [
        ("attempts left", lambda r: r[:-1] + bytes([r[-1] ^ 0x7F])),
        ("salt", lambda r: r[:6] + bytes([r[6] ^ 1]) + r[7:]),
        ("iterations", lambda r: r[:4] + bytes([r[4] ^ 1]) + r[5:]),
    ],
)
def test_i3_tampered_pbkdf_parameters_fail_the_confirmation(
    field: str, tamper: Callable[[bytes], bytes]
) -> None:
    """The parameters cross the relay unauthenticated; Context binds both messages as
    exchanged (§5.1), so a change on the way — even to the attempts-left hint alone,
    which touches no key — makes the key confirmation fail."""
    device = DevicePairing(DEVICE, CODE)
    controller = ControllerPairing(device.device_id, CONTROLLER, CODE)
    params = device.handle(controller.start(), controller.controller_id)
    assert params is not None
    pake1 = controller.receive(tamper(params))
    assert pake1 is not None
    pake2 = device.handle(pake1, controller.controller_id)
    assert pake2 is not None
    with raises_pairing(PairingFailure.WRONG_CODE):
        controller.receive(pake2)
    assert not controller.done
    assert device.failures == 1


def test_i2_a_verifier_is_bound_to_its_device() -> None:
    """RFC 9383 §3.2 stretches the code with the identities: a verifier made for one
    device id does not pair as another, even with the same code and salt."""
    device = DevicePairing(DEVICE, CODE)
    other_id = endpoint_id(bytes(32))
    device.w0, device.L = pairing.device_verifier(CODE, device.salt, device.iterations, other_id)
    controller = ControllerPairing(device.device_id, CONTROLLER, CODE)
    with raises_pairing(PairingFailure.WRONG_CODE):
        _run(controller, device)
    # And the right one pairs.
    device = DevicePairing(DEVICE, CODE)
    _run(ControllerPairing(device.device_id, CONTROLLER, CODE), device)
    assert device.controller_pub is not None
