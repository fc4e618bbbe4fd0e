"""Pairing (PROTOCOL §5): message formats, sealing, and the controller's state machine.

Sans-IO: `ControllerPairing.start()` gives the first message (for a PAIR_START
frame), `receive(message)` takes each message from the device and returns the next
one to send (for a PAIR frame) or None once the device's static key is pinned.
Every failure raises a `PairingError` whose `code` is a §5.2 error code; when the
controller itself detected the failure, `reply` holds the PAIR_ERROR message to
send to the device before giving up.

`receive(PBKDF_PARAM_RESPONSE)` runs PBKDF2 (up to 1,000,000 iterations): call it
off the event loop.
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import spake2plus
from .ids import ID_LEN, endpoint_id, validate_setup_code

CONTEXT: Final = b"HomeSeal v1 pairing"
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


class PairingError(Exception):
    """A pairing attempt failed. `code` is the §5.2 code (an int if unknown).

    `attempts_left` is what the device reported (0 when the controller failed on
    its own); `from_device` tells which side detected it; `reply` is the
    PAIR_ERROR message to send to the device, if any.
    """

    code: int = ErrorCode.BAD_MESSAGE
    _by_code: ClassVar[dict[int, type[PairingError]]] = {}

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        attempts_left: int = 0,
        from_device: bool = False,
        reply: bytes | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.attempts_left = attempts_left
        self.from_device = from_device
        self.reply = reply

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        PairingError._by_code[int(cls.code)] = cls

    @classmethod
    def from_device_error(cls, code: int, attempts_left: int) -> PairingError:
        """The exception for a PAIR_ERROR received from the device."""
        klass = PairingError._by_code.get(code, PairingError)
        name = ErrorCode(code).name.lower() if code in ErrorCode else f"unknown code {code}"
        return klass(
            f"device reported {name} ({attempts_left} attempts left)",
            code=code,
            attempts_left=attempts_left,
            from_device=True,
        )


class NotInPairingMode(PairingError):
    code = ErrorCode.NOT_IN_PAIRING_MODE


class WrongCode(PairingError):
    code = ErrorCode.WRONG_CODE


class LockedOut(PairingError):
    code = ErrorCode.LOCKED_OUT


class Busy(PairingError):
    code = ErrorCode.BUSY


class BadMessage(PairingError):
    code = ErrorCode.BAD_MESSAGE


class IdentityMismatch(PairingError):
    code = ErrorCode.IDENTITY_MISMATCH


class UnsupportedVersion(PairingError):
    code = ErrorCode.UNSUPPORTED_VERSION


class PairingStateError(Exception):
    """A ControllerPairing method was called out of order or after the end."""


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


# ---------------------------------------------------------------- sealing (§5.3)


def pairing_keys(k_shared: bytes) -> tuple[bytes, bytes]:
    """k_p ‖ k_v = HKDF-SHA256(salt = empty, ikm = K_shared, info = "HomeSeal v1 pairing keys")."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=b"", info=KEYS_INFO).derive(k_shared)
    return okm[:32], okm[32:]


def seal_static(key: bytes, id_prover: bytes, id_verifier: bytes, static_pub: bytes) -> bytes:
    """ChaCha20-Poly1305(key, nonce = 0^12, ad = idProver ‖ idVerifier, s.pub): 48 bytes."""
    _exact(static_pub, STATIC_LEN, "static key")
    return ChaCha20Poly1305(key).encrypt(ZERO_NONCE, static_pub, id_prover + id_verifier)


def unseal_static(key: bytes, id_prover: bytes, id_verifier: bytes, sealed: bytes) -> bytes:
    """Open a sealed static key; ValueError if the tag does not verify."""
    _exact(sealed, SEALED_LEN, "sealed key")
    try:
        return ChaCha20Poly1305(key).decrypt(ZERO_NONCE, sealed, id_prover + id_verifier)
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
        private = (
            X25519PrivateKey.from_private_bytes(bytes(controller_static))
            if isinstance(controller_static, bytes | bytearray)
            else controller_static
        )
        self.device_id = bytes(device_id)
        self._static_pub = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.controller_id = endpoint_id(self._static_pub)
        self._password = validate_setup_code(setup_code).encode("ascii")
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
            raise PairingStateError("start() already called")
        self._state = _State.AWAIT_PARAMS
        return PbkdfParamRequest().encode()

    def receive(self, message: bytes) -> bytes | None:
        """Handle one message from the device; return the reply, or None when paired."""
        if self._state in (_State.NEW, _State.DONE, _State.FAILED):
            raise PairingStateError(f"receive() in state {self._state.name}")
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
            raise _fail(BadMessage, str(err)) from None
        if isinstance(message, PairErrorMessage):
            raise PairingError.from_device_error(message.code, message.attempts_left)
        if not isinstance(message, _EXPECTED[self._state]):
            raise _fail(BadMessage, f"unexpected {type(message).__name__} message")
        match message:
            case PbkdfParamResponse():
                return self._on_params(message)
            case Pake2():
                return self._on_pake2(message)
            case PairDone():
                self._on_done(message)
                return None
        raise AssertionError("unreachable")  # pragma: no cover

    def _on_params(self, message: PbkdfParamResponse) -> bytes:
        try:
            validate_pbkdf_params(message.iterations, message.salt)
        except ValueError as err:
            raise _fail(BadMessage, str(err)) from None
        self.attempts_left = message.attempts_left
        self.iterations = message.iterations
        w0, w1 = spake2plus.derive_w0_w1(self._password, message.salt, message.iterations)
        self._prover = spake2plus.Prover(
            CONTEXT, self.controller_id, self.device_id, w0, w1, x=self._x
        )
        self._state = _State.AWAIT_PAKE2
        return Pake1(self._prover.start()).encode()

    def _on_pake2(self, message: Pake2) -> bytes:
        assert self._prover is not None
        try:
            confirm_p, k_shared = self._prover.finish(message.share_v, message.confirm_v)
        except spake2plus.ConfirmationError:
            raise _fail(WrongCode, "the device did not confirm the setup code") from None
        except ValueError as err:  # invalid point, identity Z or V
            raise _fail(BadMessage, f"invalid PAKE2: {err}") from None
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
            raise _fail(BadMessage, str(err)) from None
        try:
            check_identity(device_pub, self.device_id)
        except ValueError:
            raise _fail(IdentityMismatch, "the device's key does not match its id") from None
        self._k_v = None
        self.device_static_pub = device_pub
        self._state = _State.DONE


def _fail(klass: type[PairingError], message: str) -> PairingError:
    """An error the controller detected: it tells the device with PAIR_ERROR."""
    return klass(message, reply=PairErrorMessage(klass.code, 0).encode())
