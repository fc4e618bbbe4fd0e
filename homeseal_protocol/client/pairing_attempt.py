"""Runs one ControllerPairing (SPAKE2+, PROTOCOL §5) over the relay connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

from ..envelope import FrameType, RelayError
from ..errors import PairingError, PairingFailure
from ..pairing import ControllerPairing

# The device abandons an attempt after 30 s without a message (§5.3); allow for its
# slower arithmetic on top of that for each step.
STEP_TIMEOUT: Final = 45.0

# What an ERROR frame from the relay means for the attempt (§3.1).
_RELAY_FAILURES: Final[dict[int, PairingFailure]] = {
    RelayError.PEER_OFFLINE: PairingFailure.DEVICE_OFFLINE,
    RelayError.RATE_LIMITED: PairingFailure.RATE_LIMITED,
}

type RunBlocking = Callable[[Callable[[], bytes | None]], Awaitable[bytes | None]]
type SendFrame = Callable[[FrameType, bytes, bytes], Awaitable[None]]


class PairingAttempt:
    """One pairing attempt: feed it PAIR / ERROR frames from the device with `frame`.

    `run()` returns the device's static key or raises PairingError; whatever went
    wrong (the device's PAIR_ERROR, the relay's ERROR, a timeout) arrives as that one
    error type, its `failure` naming the cause.
    """

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
                raise PairingError(PairingFailure.TIMEOUT, "the device did not answer") from None
            if frame_type is FrameType.ERROR:
                code = payload[0] if payload else 0
                failure = _RELAY_FAILURES.get(code, PairingFailure.NOT_PERMITTED)
                raise PairingError(failure, f"the relay refused pairing (code {code})")
            try:
                reply = await self._run_blocking(partial(self._pairing.receive, payload))
            except PairingError as err:
                if err.reply is not None:
                    # We detected it (e.g. confirmV did not verify): tell the device.
                    await self._send(FrameType.PAIR, self.device_id, err.reply)
                if not err.from_device and err.failure is PairingFailure.WRONG_CODE:
                    # The device counted this attempt before answering PAKE2 (§5.3 step 3).
                    left = self._pairing.attempts_left
                    err.attempts_left = None if left is None else max(0, left - 1)
                raise
            if reply is not None:
                await self._send(FrameType.PAIR, self.device_id, reply)
            if self._pairing.device_static_pub is not None:
                return self._pairing.device_static_pub
