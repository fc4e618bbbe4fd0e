"""Sessions (PROTOCOL §6): the controller's Noise KK initiator, sans-IO.

`start()` gives the HANDSHAKE1 SESSION payload; `receive(payload)` takes every
SESSION payload from the device: HANDSHAKE2 opens the session (returns None),
TRANSPORT returns the decrypted application message, RESET raises
`SessionReset`. `encrypt(plaintext)` builds a TRANSPORT payload; the first one the
controller sends confirms the session to the device (§6.2).

A HANDSHAKE2 while the session is open answers a HANDSHAKE1 that this session did
not send (someone replayed one): the device keeps the live session until the new one
is confirmed, so it is ignored (returns None) and the session goes on.

Any failure closes the session for good: both CipherStates are dropped and every
later call raises `SessionClosed`. The caller starts a new InitiatorSession.
"""

from __future__ import annotations

import enum
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .crypto.noise import CipherState, HandshakeState, KeyPair
from .errors import (
    DecryptFailed,
    HandshakeFailed,
    LimitReached,
    NoiseError,
    SessionClosed,
    SessionError,
    SessionProtocolError,
    SessionReset,
    StateError,
)
from .ids import ID_LEN, endpoint_id

PROTOCOL_NAME: Final = "Noise_KK_25519_ChaChaPoly_SHA256"
PROLOGUE_LABEL: Final = b"HomeSeal v1 session"
HANDSHAKE_LEN: Final = 48  # e (32) ‖ tag of the empty payload (16)
TAG_LEN: Final = 16
MAX_PLAINTEXT: Final = 3072  # §7
MAX_MESSAGES: Final = 2**20  # per direction; the device refuses beyond
REKEY_MESSAGES: Final = 2**20 - 1024
MAX_AGE: Final = 24 * 3600.0
REKEY_AGE: Final = 23 * 3600.0


class Kind(enum.IntEnum):
    """First byte of a SESSION payload."""

    HANDSHAKE1 = 0x01
    HANDSHAKE2 = 0x02
    TRANSPORT = 0x03
    RESET = 0x04


class ResetReason(enum.IntEnum):
    """Reasons carried by RESET."""

    NO_SESSION = 1
    HANDSHAKE_FAILED = 2
    NOT_PAIRED = 3
    LIMIT_REACHED = 4
    PROTOCOL_ERROR = 5
    DECRYPT_FAILED = 6


_KINDS: Final = frozenset(Kind)


def prologue(device_id: bytes, controller_id: bytes) -> bytes:
    """`"HomeSeal v1 session" ‖ device id ‖ controller id`."""
    return PROLOGUE_LABEL + device_id + controller_id


def encode_reset(reason: int) -> bytes:
    """A RESET payload: `0x04 ‖ reason`."""
    return bytes((Kind.RESET, reason))


@dataclass(frozen=True, slots=True)
class Reset:
    """A RESET's body: why the sender holds no session. Unauthenticated: a hint, never
    evidence."""

    reason: int

    @property
    def name(self) -> str:
        return (
            ResetReason(self.reason).name.lower()
            if self.reason in ResetReason
            else str(self.reason)
        )


def kind_of(payload: bytes) -> Kind | None:
    """The SESSION payload's kind, or None for an empty payload or an unknown kind."""
    if not payload or payload[0] not in _KINDS:
        return None
    return Kind(payload[0])


def decode_reset(payload: bytes) -> Reset:
    """Parse a whole RESET payload `0x04 ‖ reason` (2 bytes)."""
    if len(payload) != 2 or payload[0] != Kind.RESET:
        raise SessionProtocolError("RESET must be 0x04 ‖ reason")
    return Reset(payload[1])


class _State(enum.Enum):
    NEW = enum.auto()
    HANDSHAKING = enum.auto()
    OPEN = enum.auto()
    CLOSED = enum.auto()


class InitiatorSession:
    """One Noise KK session, controller (initiator) side."""

    def __init__(
        self,
        controller_static_priv: X25519PrivateKey | bytes,
        device_static_pub: bytes,
        device_id: bytes,
        controller_id: bytes,
        *,
        ephemeral: X25519PrivateKey | bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        static = KeyPair.from_private(controller_static_priv)
        if len(device_id) != ID_LEN or len(controller_id) != ID_LEN:
            raise ValueError(f"endpoint ids are {ID_LEN} bytes")
        if not hmac.compare_digest(endpoint_id(device_static_pub), device_id):
            raise ValueError("device static key does not match the device id")
        if not hmac.compare_digest(endpoint_id(static.public), controller_id):
            raise ValueError("controller static key does not match the controller id")
        self.device_id = bytes(device_id)
        self.controller_id = bytes(controller_id)
        self._clock = clock
        self._handshake: HandshakeState | None = HandshakeState(
            PROTOCOL_NAME,
            initiator=True,
            prologue=prologue(device_id, controller_id),
            s=static,
            e=ephemeral,
            rs=bytes(device_static_pub),
        )
        self._send: CipherState | None = None
        self._receive: CipherState | None = None
        self._state = _State.NEW
        self.opened_at: float | None = None
        self.handshake_hash: bytes | None = None
        self.close_reason: str | None = None

    def __repr__(self) -> str:
        return f"InitiatorSession(device_id={self.device_id.hex()}, state={self._state.name})"

    # -- state

    @property
    def is_open(self) -> bool:
        return self._state is _State.OPEN

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def messages_sent(self) -> int:
        return self._send.n if self._send else 0

    @property
    def messages_received(self) -> int:
        return self._receive.n if self._receive else 0

    @property
    def needs_rekey(self) -> bool:
        """True once a new handshake is due (2^20 - 1024 messages or 23 h)."""
        if self._state is not _State.OPEN or self.opened_at is None:
            return False
        return (
            max(self.messages_sent, self.messages_received) >= REKEY_MESSAGES
            or self._clock() - self.opened_at >= REKEY_AGE
        )

    def close(self, reason: str = "closed by the controller") -> None:
        """Drop both CipherStates; later calls raise SessionClosed."""
        self._state = _State.CLOSED
        self._handshake = None
        self._send = None
        self._receive = None
        if self.close_reason is None:
            self.close_reason = reason

    def _fail(self, error: SessionError) -> SessionError:
        self.close(str(error))
        return error

    def _check_open(self) -> tuple[CipherState, CipherState]:
        if self._state is _State.CLOSED:
            raise SessionClosed(f"session is closed ({self.close_reason})")
        if self._state is not _State.OPEN or self._send is None or self._receive is None:
            raise SessionProtocolError("session is not open yet")
        if self.opened_at is not None and self._clock() - self.opened_at >= MAX_AGE:
            raise self._fail(LimitReached("session is 24 hours old"))
        return self._send, self._receive

    # -- messages

    def start(self) -> bytes:
        """HANDSHAKE1: `0x01 ‖ -> e, es, ss` with an empty payload."""
        if self._state is _State.CLOSED:
            raise SessionClosed(f"session is closed ({self.close_reason})")
        if self._state is not _State.NEW or self._handshake is None:
            raise StateError("start() already called")
        message = self._handshake.write_message(b"")
        self._state = _State.HANDSHAKING
        return bytes((Kind.HANDSHAKE1,)) + message

    def receive(self, payload: bytes) -> bytes | None:
        """Handle one SESSION payload from the device (see the module docstring)."""
        if self._state is _State.CLOSED:
            raise SessionClosed(f"session is closed ({self.close_reason})")
        if not payload:
            raise self._fail(SessionProtocolError("empty SESSION payload"))
        kind, body = payload[0], bytes(payload[1:])
        if kind == Kind.RESET:
            try:
                reset = decode_reset(payload)
            except SessionProtocolError as err:
                raise self._fail(err) from None
            raise self._fail(SessionReset(f"device reset the session: {reset.name}", reset.reason))
        if kind == Kind.HANDSHAKE2 and self._state is _State.HANDSHAKING:
            self._on_handshake2(body)
            return None
        if kind == Kind.HANDSHAKE2 and self._state is _State.OPEN:
            return None  # the answer to a replayed HANDSHAKE1 (module docstring)
        if kind == Kind.TRANSPORT and self._state is _State.OPEN:
            return self._decrypt(body)
        if kind in Kind.__members__.values():
            raise self._fail(
                SessionProtocolError(f"{Kind(kind).name} not allowed in state {self._state.name}")
            )
        raise self._fail(SessionProtocolError(f"unknown SESSION kind 0x{kind:02x}"))

    def _on_handshake2(self, body: bytes) -> None:
        handshake = self._handshake
        assert handshake is not None
        if len(body) != HANDSHAKE_LEN:
            raise self._fail(HandshakeFailed(f"HANDSHAKE2 must be {HANDSHAKE_LEN} bytes"))
        try:
            handshake.read_message(body)
        except NoiseError:
            raise self._fail(HandshakeFailed("HANDSHAKE2 did not authenticate")) from None
        self._send, self._receive = handshake.transport()
        self.handshake_hash = handshake.get_handshake_hash()
        self._handshake = None
        self._state = _State.OPEN
        self.opened_at = self._clock()

    def _decrypt(self, body: bytes) -> bytes:
        _, receive = self._check_open()
        if receive.n >= MAX_MESSAGES:
            raise self._fail(LimitReached("receive counter reached 2^20"))
        if len(body) < TAG_LEN:
            raise self._fail(
                DecryptFailed(
                    "TRANSPORT message truncated",
                    reply=encode_reset(ResetReason.DECRYPT_FAILED),
                )
            )
        try:
            return receive.decrypt_with_ad(b"", body)
        except NoiseError:
            raise self._fail(
                DecryptFailed(
                    "TRANSPORT message did not decrypt",
                    reply=encode_reset(ResetReason.DECRYPT_FAILED),
                )
            ) from None

    def encrypt(self, plaintext: bytes) -> bytes:
        """TRANSPORT: `0x03 ‖ ciphertext` for one application message (≤ 3072 bytes)."""
        send, _ = self._check_open()
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError(f"application message exceeds {MAX_PLAINTEXT} bytes")
        if send.n >= MAX_MESSAGES:
            raise self._fail(LimitReached("send counter reached 2^20"))
        return bytes((Kind.TRANSPORT,)) + send.encrypt_with_ad(b"", plaintext)
