"""Every exception the library raises, under one root: `HomeSealError`.

Grouped by layer, from the wire up. Errors about bad input from a peer are also
`ValueError`s, errors about calls out of order are also `RuntimeError`s, so code
that only knows the builtins still catches them.
"""

from __future__ import annotations

from enum import StrEnum


class HomeSealError(Exception):
    """Root of every HomeSeal error."""


class StateError(HomeSealError, RuntimeError):
    """A state machine was driven out of order (a bug in the caller, never the peer)."""


# ---------------------------------------------------------------- the wire (§3, §4)


class EnvelopeError(HomeSealError, ValueError):
    """A frame that breaks §3; `close_code` is what the receiver closes with."""

    def __init__(self, message: str, close_code: int = 4000) -> None:
        super().__init__(message)
        self.close_code = close_code


class RelayAuthError(HomeSealError, ValueError):
    """The challenge-response of §4 or a control frame of §4.1 does not verify."""


# ---------------------------------------------------------------- crypto


class NoiseError(HomeSealError, ValueError):
    """Any Noise failure: bad state, bad message, failed decryption, exhausted nonce."""


class DecryptError(NoiseError):
    """An AEAD tag did not verify. The CipherState's nonce did not advance."""


class ConfirmationError(HomeSealError, ValueError):
    """A SPAKE2+ confirmation MAC did not verify (wrong password, or tampering)."""


# ---------------------------------------------------------------- pairing (§5)


class PairingFailure(StrEnum):
    """Why a pairing attempt failed: the §5.2 error names, then what the relay or the
    controller itself can add. The values are stable: the integration uses them as
    its translation keys."""

    NOT_IN_PAIRING_MODE = "not_in_pairing_mode"
    WRONG_CODE = "wrong_code"
    LOCKED_OUT = "locked_out"
    BUSY = "busy"
    BAD_MESSAGE = "bad_message"
    IDENTITY_MISMATCH = "identity_mismatch"
    UNSUPPORTED_VERSION = "unsupported_version"
    # From the relay (§3.1) or the controller's own driver.
    DEVICE_OFFLINE = "device_offline"
    NOT_PERMITTED = "not_permitted"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    IN_PROGRESS = "in_progress"


class PairingError(HomeSealError):
    """A pairing attempt failed, for `failure`.

    `attempts_left` is what the device has left when known; `from_device` tells
    whether the device reported it (PAIR_ERROR) rather than the controller or the
    relay; `reply` is the PAIR_ERROR message the controller sends the device
    before giving up, when the controller detected the failure itself.
    """

    def __init__(
        self,
        failure: PairingFailure,
        message: str = "",
        *,
        attempts_left: int | None = None,
        from_device: bool = False,
        reply: bytes | None = None,
    ) -> None:
        super().__init__(message or failure.value)
        self.failure = failure
        self.attempts_left = attempts_left
        self.from_device = from_device
        self.reply = reply


# ---------------------------------------------------------------- sessions (§6, §7)


class SessionError(HomeSealError):
    """The session failed and is closed. `reply` is a SESSION payload to send, if any."""

    def __init__(self, message: str, reply: bytes | None = None) -> None:
        super().__init__(message)
        self.reply = reply


class SessionClosed(SessionError):
    """The session was closed earlier (failure, reset or limit); start a new one."""


class SessionProtocolError(SessionError):
    """A malformed SESSION payload or one that is not allowed in the current state."""


class HandshakeFailed(SessionError):
    """HANDSHAKE2 did not authenticate: not our device, or tampered with."""


class DecryptFailed(SessionError):
    """A TRANSPORT message did not decrypt: flipped, truncated, replayed, reordered, injected."""


class LimitReached(SessionError):
    """The message or age limit of §6 was reached."""


class SessionReset(SessionError):
    """The device sent RESET (unauthenticated, a hint): `reason` is its §6 reason byte."""

    def __init__(self, message: str, reason: int) -> None:
        super().__init__(message)
        self.reason = reason


class MessageError(HomeSealError, ValueError):
    """A plaintext that is not a valid application message (§7)."""


# ---------------------------------------------------------------- the relay connection


class RelayConnectionError(HomeSealError):
    """Base of the relay websocket's errors."""


class NotConnected(RelayConnectionError):
    """A frame was sent while the relay connection is down."""


class AuthRejected(RelayConnectionError):
    """The relay refused the token or the challenge-response: the user must act."""


# ---------------------------------------------------------------- devices


class DeviceError(HomeSealError):
    """Base of the errors a command to a device can raise."""


class DeviceOffline(DeviceError):
    """No session with the device (relay down, device offline, handshake pending)."""


class CommandTimeout(DeviceError):
    """The device did not answer in time."""


class CommandRejected(DeviceError):
    """The device answered `ok: false`; `error` is its reason."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class NotRecognised(DeviceError):
    """The device has answered for a long time that it does not know this controller
    (reset, or paired elsewhere): it needs pairing again."""


# ---------------------------------------------------------------- the HTTP API (§8)


class RelayApiError(HomeSealError):
    """Base of every error the relay's HTTP API raises."""


class InvalidRelayUrl(RelayApiError, ValueError):
    """The URL is not an https:// URL."""


class CannotConnect(RelayApiError):
    """The relay cannot be reached or answered something that is not the API."""


class TlsNotTrusted(CannotConnect):
    """TLS failed: unknown CA, wrong host name or certificate fingerprint mismatch."""


class InvalidCredentials(RelayApiError):
    """Wrong username or password."""


class Unauthorized(RelayApiError):
    """The token was rejected (revoked or expired)."""


class UsernameTaken(RelayApiError):
    """`username_taken`."""


class InvalidUsername(RelayApiError):
    """`invalid_username`."""


class WeakPassword(RelayApiError):
    """`weak_password`."""


class NotFound(RelayApiError):
    """`not_found`."""


class RateLimited(RelayApiError):
    """HTTP 429; `retry_after` in seconds when the relay said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
