"""Runs ControllerPairing (SPAKE2+, PROTOCOL §5) over the relay connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

from .envelope import FrameType, RelayError
from .pairing import ControllerPairing, ErrorCode, PairingError

# The device abandons an attempt after 30 s without a message (§5.3); allow for its
# slower arithmetic on top of that for each step.
STEP_TIMEOUT: Final = 45.0

type RunBlocking = Callable[[Callable[[], bytes | None]], Awaitable[bytes | None]]
type SendFrame = Callable[[FrameType, bytes, bytes], Awaitable[None]]


class PairingFailed(Exception):
    """Base class of pairing failures that are not PairingError from the protocol."""


class PairingDeviceOffline(PairingFailed):
    """The relay says the device is not connected."""


class PairingNotPermitted(PairingFailed):
    """The relay refused: the device belongs to another account."""


class PairingRateLimited(PairingFailed):
    """The relay limited pairing attempts."""


class PairingTimeout(PairingFailed):
    """The device stopped answering."""


class PairingInProgress(PairingFailed):
    """This controller is already pairing a device (one attempt at a time)."""


class PairingRejected(PairingFailed):
    """The exchange failed (§5.2 `code`); `attempts_left` when known."""

    def __init__(self, message: str, code: int, attempts_left: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.attempts_left = attempts_left


class PairingAttempt:
    """One pairing attempt: feed it PAIR / ERROR frames from the device with `frame`."""

    def __init__(
        self,
        device_id: bytes,
        pairing: ControllerPairing,
        send: SendFrame,
        run_blocking: RunBlocking,
        step_timeout: float = STEP_TIMEOUT,
    ) -> None:
        self.device_id = device_id
        self._pairing = pairing
        self._send = send
        self._run_blocking = run_blocking
        self._step_timeout = step_timeout
        self._inbox: asyncio.Queue[tuple[FrameType, bytes]] = asyncio.Queue(maxsize=8)

    def frame(self, frame_type: FrameType, payload: bytes) -> None:
        # A device flooding us gets its extra frames dropped.
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait((frame_type, payload))

    async def run(self) -> bytes:
        """Pair; returns the device's static public key (already checked against its id)."""
        first = await self._run_blocking(self._pairing.start)
        assert first is not None
        await self._send(FrameType.PAIR_START, self.device_id, first)
        while True:
            try:
                async with asyncio.timeout(self._step_timeout):
                    frame_type, payload = await self._inbox.get()
            except TimeoutError:
                raise PairingTimeout("the device did not answer") from None
            if frame_type is FrameType.ERROR:
                code = payload[0] if payload else 0
                if code == RelayError.PEER_OFFLINE:
                    raise PairingDeviceOffline("the device is not connected to the relay")
                if code == RelayError.RATE_LIMITED:
                    raise PairingRateLimited("too many pairing attempts")
                raise PairingNotPermitted(f"the relay refused pairing (code {code})")
            try:
                reply = await self._run_blocking(partial(self._pairing.receive, payload))
            except PairingError as err:
                if err.reply is not None:
                    # We detected it (e.g. confirmV did not verify): tell the device.
                    await self._send(FrameType.PAIR, self.device_id, err.reply)
                raise PairingRejected(str(err), int(err.code), self._attempts_left(err)) from err
            if reply is not None:
                await self._send(FrameType.PAIR, self.device_id, reply)
            if self._pairing.device_static_pub is not None:
                return self._pairing.device_static_pub

    def _attempts_left(self, err: PairingError) -> int | None:
        if err.from_device:
            return err.attempts_left
        if err.code == ErrorCode.WRONG_CODE and self._pairing.attempts_left is not None:
            # The device counted this attempt before answering PAKE2 (§5.3 step 3).
            return max(0, self._pairing.attempts_left - 1)
        return None
