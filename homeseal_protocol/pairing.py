"""Pairing (PROTOCOL §5): message formats, sealing, and the controller's state machine.

Sans-IO: `ControllerPairing.start()` gives the first message (for a PAIR_START
frame), `receive(message)` takes each message from the device and returns the next
one to send (for a PAIR frame) or None once the device's static key is pinned.
Every failure raises a `PairingError` whose `failure` names it (§5.2); when the
controller itself detected the failure, `reply` holds the PAIR_ERROR message to
send to the device before giving up.

`receive(PBKDF_PARAM_RESPONSE)` runs PBKDF2 (up to 1,000,000 iterations): call it
off the event loop.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .crypto import spake2plus
from .errors import ConfirmationError, PairingError, PairingFailure, StateError
from .ids import ID_LEN, endpoint_id, validate_setup_code
from .keys import private_key, public_bytes

CONTEXT_LABEL: Final = b"HomeSeal v1 pairing"
# A device's verifier (w0, L) is computed when it is provisioned, before any
# controller exists: it can name only the device. So idProver is empty, in the PBKDF
# input and in TT alike, and the controller's id is bound through the context (§5.1).
ID_PROVER: Final = b""
KEYS_INFO: Final = b"HomeSeal v1 pairing keys"
VERSION: Final = 1
MIN_ITERATIONS: Final = 1_000
MAX_ITERATIONS: Final = 1_000_000
MIN_SALT: Final = 16
MAX_SALT: Final = 32
SHARE_LEN: Final = spake2plus.SHARE_LEN  # 65
CONFIRM_LEN: Final = spake2plus.CONFIRM_LEN  # 32
STATIC_LEN: Final = 32
SEALED_LEN: Final = STATIC_LEN + 16
ZERO_NONCE: Final = bytes(12)


class MessageType(enum.IntEnum):
    """§5.2 pairing message types (first byte of every pairing message)."""

    PBKDF_PARAM_REQUEST = 0x01
    PBKDF_PARAM_RESPONSE = 0x02
    PAKE1 = 0x03
    PAKE2 = 0x04
    PAKE3 = 0x05
    PAIR_DONE = 0x06
    PAIR_ERROR = 0x7F


class ErrorCode(enum.IntEnum):
    """§5.2 pairing error codes."""

    NOT_IN_PAIRING_MODE = 1
    WRONG_CODE = 2
    LOCKED_OUT = 3
    BUSY = 4
    BAD_MESSAGE = 5
    IDENTITY_MISMATCH = 6
    UNSUPPORTED_VERSION = 7


# ---------------------------------------------------------------- errors


def device_error(code: int, attempts_left: int) -> PairingError:
    """The error for a PAIR_ERROR the device sent (an unknown code is a bad message)."""
    failure = (
        PairingFailure[ErrorCode(code).name] if code in ErrorCode else PairingFailure.BAD_MESSAGE
    )
    return PairingError(
        failure,
        f"device reported {failure} ({attempts_left} attempts left)",
        attempts_left=attempts_left,
        from_device=True,
    )


def _fail(failure: PairingFailure, message: str) -> PairingError:
    """An error the controller detected: it tells the device with PAIR_ERROR."""
    code = ErrorCode[failure.name]
    return PairingError(failure, message, reply=PairErrorMessage(code, 0).encode())


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class PbkdfParamRequest:
    version: int = VERSION

    def encode(self) -> bytes:
        return bytes((MessageType.PBKDF_PARAM_REQUEST, self.version))


@dataclass(frozen=True, slots=True)
class PbkdfParamResponse:
    iterations: int
    salt: bytes
    attempts_left: int

    def encode(self) -> bytes:
        if not 0 <= len(self.salt) <= 255:
            raise ValueError("salt too long")
        return (
            struct.pack(">BIB", MessageType.PBKDF_PARAM_RESPONSE, self.iterations, len(self.salt))
            + self.salt
            + bytes((self.attempts_left,))
        )


@dataclass(frozen=True, slots=True)
class Pake1:
    share_p: bytes

    def encode(self) -> bytes:
        return bytes((MessageType.PAKE1,)) + _exact(self.share_p, SHARE_LEN, "shareP")


@dataclass(frozen=True, slots=True)
class Pake2:
    share_v: bytes
    confirm_v: bytes

    def encode(self) -> bytes:
        return (
            bytes((MessageType.PAKE2,))
            + _exact(self.share_v, SHARE_LEN, "shareV")
            + _exact(self.confirm_v, CONFIRM_LEN, "confirmV")
        )


@dataclass(frozen=True, slots=True)
class Pake3:
    confirm_p: bytes
    sealed_controller_key: bytes

    def encode(self) -> bytes:
        return (
            bytes((MessageType.PAKE3,))
            + _exact(self.confirm_p, CONFIRM_LEN, "confirmP")
            + _exact(self.sealed_controller_key, SEALED_LEN, "sealed key")
        )


@dataclass(frozen=True, slots=True)
class PairDone:
    sealed_device_key: bytes

    def encode(self) -> bytes:
        return bytes((MessageType.PAIR_DONE,)) + _exact(
            self.sealed_device_key, SEALED_LEN, "sealed key"
        )


@dataclass(frozen=True, slots=True)
class PairErrorMessage:
    code: int
    attempts_left: int = 0

    def encode(self) -> bytes:
        return bytes((MessageType.PAIR_ERROR, self.code, self.attempts_left))


type PairingMessage = (
    PbkdfParamRequest | PbkdfParamResponse | Pake1 | Pake2 | Pake3 | PairDone | PairErrorMessage
)


def _exact(data: bytes, size: int, name: str) -> bytes:
    if len(data) != size:
        raise ValueError(f"{name} must be {size} bytes")
    return bytes(data)


def decode_message(data: bytes) -> PairingMessage:
    """Parse one pairing message; ValueError for any malformed or unknown one."""
    if not data:
        raise ValueError("empty pairing message")
    kind, body = data[0], bytes(data[1:])
    sizes = {
        MessageType.PBKDF_PARAM_REQUEST: 1,
        MessageType.PAKE1: SHARE_LEN,
        MessageType.PAKE2: SHARE_LEN + CONFIRM_LEN,
        MessageType.PAKE3: CONFIRM_LEN + SEALED_LEN,
        MessageType.PAIR_DONE: SEALED_LEN,
        MessageType.PAIR_ERROR: 2,
    }
    if kind == MessageType.PBKDF_PARAM_RESPONSE:
        if len(body) < 6 or len(body) != 6 + body[4]:
            raise ValueError("PBKDF_PARAM_RESPONSE has the wrong length")
        (iterations,) = struct.unpack(">I", body[:4])
        return PbkdfParamResponse(iterations, body[5 : 5 + body[4]], body[-1])
    if kind not in sizes:
        raise ValueError(f"unknown pairing message type 0x{kind:02x}")
    message_type = MessageType(kind)
    if len(body) != sizes[message_type]:
        raise ValueError(f"{message_type.name} body must be {sizes[message_type]} bytes")
    match message_type:
        case MessageType.PBKDF_PARAM_REQUEST:
            return PbkdfParamRequest(body[0])
        case MessageType.PAKE1:
            return Pake1(body)
        case MessageType.PAKE2:
            return Pake2(body[:SHARE_LEN], body[SHARE_LEN:])
        case MessageType.PAKE3:
            return Pake3(body[:CONFIRM_LEN], body[CONFIRM_LEN:])
        case MessageType.PAIR_DONE:
            return PairDone(body)
        case _:
            return PairErrorMessage(body[0], body[1])


def validate_pbkdf_params(iterations: int, salt: bytes) -> None:
    """§5.1 bounds: 1,000 ≤ iterations ≤ 1,000,000 and 16 ≤ len(salt) ≤ 32."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(
            f"PBKDF iterations must be {MIN_ITERATIONS:,} to {MAX_ITERATIONS:,}, got {iterations:,}"
        )
    if not MIN_SALT <= len(salt) <= MAX_SALT:
        raise ValueError(f"PBKDF salt must be {MIN_SALT} to {MAX_SALT} bytes, got {len(salt)}")


def pairing_context(controller_id: bytes, request: bytes, response: bytes) -> bytes:
    """§5.1 Context = "HomeSeal v1 pairing" ‖ controller id ‖ SHA-256(PBKDF_PARAM_REQUEST
    ‖ PBKDF_PARAM_RESPONSE), both messages exactly as sent: a salt, iteration count or
    attempts-left value changed on the way makes the two sides' TT differ, and the key
    confirmation fails as tampering would."""
    return CONTEXT_LABEL + controller_id + hashlib.sha256(request + response).digest()


def derive_w0_w1(
    setup_code: str, salt: bytes, iterations: int, device_id: bytes
) -> tuple[int, int]:
    """The controller's w0, w1 for the device `device_id` (RFC 9383 §3.2)."""
    return spake2plus.derive_w0_w1(
        validate_setup_code(setup_code).encode("ascii"),
        salt,
        iterations,
        id_prover=ID_PROVER,
        id_verifier=device_id,
    )


def device_verifier(
    setup_code: str, salt: bytes, iterations: int, device_id: bytes
) -> tuple[bytes, bytes]:
    """What a device is provisioned with: (w0, L) for its setup code and its id."""
    validate_pbkdf_params(iterations, salt)
    return spake2plus.compute_verifier(
        validate_setup_code(setup_code).encode("ascii"),
        salt,
        iterations,
        id_prover=ID_PROVER,
        id_verifier=device_id,
    )


# ---------------------------------------------------------------- sealing (§5.3)


def pairing_keys(k_shared: bytes) -> tuple[bytes, bytes]:
    """k_p ‖ k_v = HKDF-SHA256(salt = empty, ikm = K_shared, info = "HomeSeal v1 pairing keys")."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=b"", info=KEYS_INFO).derive(k_shared)
    return okm[:32], okm[32:]


def seal_static(key: bytes, controller_id: bytes, device_id: bytes, static_pub: bytes) -> bytes:
    """ChaCha20-Poly1305(key, nonce = 0^12, ad = controller id ‖ device id, s.pub): 48 bytes."""
    _exact(static_pub, STATIC_LEN, "static key")
    return ChaCha20Poly1305(key).encrypt(ZERO_NONCE, static_pub, controller_id + device_id)


def unseal_static(key: bytes, controller_id: bytes, device_id: bytes, sealed: bytes) -> bytes:
    """Open a sealed static key; ValueError if the tag does not verify."""
    _exact(sealed, SEALED_LEN, "sealed key")
    try:
        return ChaCha20Poly1305(key).decrypt(ZERO_NONCE, sealed, controller_id + device_id)
    except InvalidTag:
        raise ValueError("sealed static key did not authenticate") from None


def check_identity(static_pub: bytes, expected_id: bytes) -> None:
    """The unsealed key must hash to the peer's endpoint id (constant-time compare)."""
    if not hmac.compare_digest(endpoint_id(static_pub), expected_id):
        raise ValueError("static key does not match the endpoint id")


# ---------------------------------------------------------------- state machine


class _State(enum.Enum):
    NEW = enum.auto()
    AWAIT_PARAMS = enum.auto()
    AWAIT_PAKE2 = enum.auto()
    AWAIT_DONE = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


_EXPECTED: Final = {
    _State.AWAIT_PARAMS: PbkdfParamResponse,
    _State.AWAIT_PAKE2: Pake2,
    _State.AWAIT_DONE: PairDone,
}


class ControllerPairing:
    """One pairing attempt on the controller (SPAKE2+ Prover) side."""

    def __init__(
        self,
        device_id: bytes,
        controller_static: X25519PrivateKey | bytes,
        setup_code: str,
        *,
        x: int | None = None,
    ) -> None:
        if len(device_id) != ID_LEN:
            raise ValueError(f"device id must be {ID_LEN} bytes")
        self.device_id = bytes(device_id)
        self._static_pub = public_bytes(private_key(controller_static))
        self.controller_id = endpoint_id(self._static_pub)
        self._setup_code = validate_setup_code(setup_code)
        self._request = PbkdfParamRequest().encode()
        self._x = x
        self._state = _State.NEW
        self._prover: spake2plus.Prover | None = None
        self._k_v: bytes | None = None
        self.attempts_left: int | None = None
        self.iterations: int | None = None
        self.device_static_pub: bytes | None = None

    def __repr__(self) -> str:
        return f"ControllerPairing(device_id={self.device_id.hex()}, state={self._state.name})"

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def start(self) -> bytes:
        """PBKDF_PARAM_REQUEST, the body of the PAIR_START frame."""
        if self._state is not _State.NEW:
            raise StateError("start() already called")
        self._state = _State.AWAIT_PARAMS
        return self._request

    def receive(self, message: bytes) -> bytes | None:
        """Handle one message from the device; return the reply, or None when paired."""
        if self._state in (_State.NEW, _State.DONE, _State.FAILED):
            raise StateError(f"receive() in state {self._state.name}")
        try:
            return self._receive(message)
        except PairingError:
            self._state = _State.FAILED
            self._prover = None
            self._k_v = None
            raise

    def _receive(self, data: bytes) -> bytes | None:
        try:
            message = decode_message(data)
        except ValueError as err:
            raise _fail(PairingFailure.BAD_MESSAGE, str(err)) from None
        if isinstance(message, PairErrorMessage):
            raise device_error(message.code, message.attempts_left)
        if not isinstance(message, _EXPECTED[self._state]):
            raise _fail(PairingFailure.BAD_MESSAGE, f"unexpected {type(message).__name__} message")
        match message:
            case PbkdfParamResponse():
                return self._on_params(message, data)
            case Pake2():
                return self._on_pake2(message)
            case PairDone():
                self._on_done(message)
                return None
        raise AssertionError("unreachable")  # pragma: no cover

    def _on_params(self, message: PbkdfParamResponse, response: bytes) -> bytes:
        try:
            validate_pbkdf_params(message.iterations, message.salt)
        except ValueError as err:
            raise _fail(PairingFailure.BAD_MESSAGE, str(err)) from None
        self.attempts_left = message.attempts_left
        self.iterations = message.iterations
        w0, w1 = derive_w0_w1(self._setup_code, message.salt, message.iterations, self.device_id)
        context = pairing_context(self.controller_id, self._request, bytes(response))
        self._prover = spake2plus.Prover(context, ID_PROVER, self.device_id, w0, w1, x=self._x)
        self._state = _State.AWAIT_PAKE2
        return Pake1(self._prover.start()).encode()

    def _on_pake2(self, message: Pake2) -> bytes:
        assert self._prover is not None
        try:
            confirm_p, k_shared = self._prover.finish(message.share_v, message.confirm_v)
        except ConfirmationError:
            raise _fail(
                PairingFailure.WRONG_CODE, "the device did not confirm the setup code"
            ) from None
        except ValueError as err:  # invalid point, identity Z or V
            raise _fail(PairingFailure.BAD_MESSAGE, f"invalid PAKE2: {err}") from None
        finally:
            self._prover = None
        k_p, self._k_v = pairing_keys(k_shared)
        sealed = seal_static(k_p, self.controller_id, self.device_id, self._static_pub)
        self._state = _State.AWAIT_DONE
        return Pake3(confirm_p, sealed).encode()

    def _on_done(self, message: PairDone) -> None:
        assert self._k_v is not None
        try:
            device_pub = unseal_static(
                self._k_v, self.controller_id, self.device_id, message.sealed_device_key
            )
        except ValueError as err:
            raise _fail(PairingFailure.BAD_MESSAGE, str(err)) from None
        try:
            check_identity(device_pub, self.device_id)
        except ValueError:
            raise _fail(
                PairingFailure.IDENTITY_MISMATCH, "the device's key does not match its id"
            ) from None
        self._k_v = None
        self.device_static_pub = device_pub
        self._state = _State.DONE
