"""A CPython device-side pairing test double, for the controller's state machine tests.

Interop with the real firmware lives in tests/interop; this double only lets the
controller's tests drive every branch (wrong code, lock-out, tampering) quickly.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from homeseal_protocol import pairing
from homeseal_protocol.crypto import spake2plus
from homeseal_protocol.ids import endpoint_id
from homeseal_protocol.pairing import (
    ID_PROVER,
    ErrorCode,
    PairDone,
    PairErrorMessage,
    Pake1,
    Pake2,
    Pake3,
    PbkdfParamRequest,
    PbkdfParamResponse,
)


class DevicePairing:
    """The device's side of §5, simplified: one attempt at a time, counter in memory."""

    def __init__(
        self,
        static_priv: bytes,
        setup_code: str,
        *,
        salt: bytes = b"S" * 16,
        iterations: int = 1000,
        limit: int = 20,
        y: int | None = None,
    ) -> None:
        self.static_pub = (
            X25519PrivateKey.from_private_bytes(static_priv)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        self.device_id = endpoint_id(self.static_pub)
        self.salt, self.iterations, self.limit = salt, iterations, limit
        self.w0, self.L = pairing.device_verifier(setup_code, salt, iterations, self.device_id)
        self.failures = 0
        self.y = y
        self.controller_id: bytes | None = None
        self.controller_pub: bytes | None = None
        # PBKDF_PARAM_REQUEST and PBKDF_PARAM_RESPONSE as exchanged, for the context.
        self.params = (b"", b"")
        self._verifier: spake2plus.Verifier | None = None

    def _error(self, code: int) -> bytes:
        return PairErrorMessage(code, max(self.limit - self.failures, 0)).encode()

    def handle(self, data: bytes, controller_id: bytes) -> bytes | None:
        try:
            message = pairing.decode_message(data)
        except ValueError:
            return self._error(ErrorCode.BAD_MESSAGE)
        if self.failures >= self.limit:
            return self._error(ErrorCode.LOCKED_OUT)
        match message:
            case PbkdfParamRequest(version=1):
                self.params = (
                    data,
                    PbkdfParamResponse(
                        self.iterations, self.salt, self.limit - self.failures
                    ).encode(),
                )
                return self.params[1]
            case PbkdfParamRequest():
                return self._error(ErrorCode.UNSUPPORTED_VERSION)
            case Pake1(share_p=share_p):
                self.failures += 1  # counted before answering (§5.3 step 3)
                self.controller_id = controller_id
                context = pairing.pairing_context(controller_id, *self.params)
                self._verifier = spake2plus.Verifier(
                    context, ID_PROVER, self.device_id, self.w0, self.L, y=self.y
                )
                try:
                    share_v, confirm_v = self._verifier.respond(share_p)
                except ValueError:
                    return self._error(ErrorCode.BAD_MESSAGE)
                return Pake2(share_v, confirm_v).encode()
            case Pake3(confirm_p=confirm_p, sealed_controller_key=sealed):
                if self._verifier is None or self.controller_id is None:
                    return self._error(ErrorCode.BAD_MESSAGE)
                try:
                    k_shared = self._verifier.finish(confirm_p)
                except spake2plus.ConfirmationError:
                    return self._error(ErrorCode.WRONG_CODE)
                k_p, k_v = pairing.pairing_keys(k_shared)
                pub = pairing.unseal_static(k_p, self.controller_id, self.device_id, sealed)
                pairing.check_identity(pub, self.controller_id)
                self.controller_pub = pub
                self.failures = 0
                sealed_device = pairing.seal_static(
                    k_v, self.controller_id, self.device_id, self.static_pub
                )
                return PairDone(sealed_device).encode()
            case PairErrorMessage():
                return None
        return self._error(ErrorCode.BAD_MESSAGE)
