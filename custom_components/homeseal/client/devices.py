"""Per-device session management on top of the Noise session (PROTOCOL §6, §7).

A DeviceLink owns at most one InitiatorSession with its device: it handshakes when the
relay connection comes up or the device appears, re-handshakes after a RESET or before
the session limits, turns `describe` / `state` into cached data, and matches commands
with their results.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Final

from .envelope import RelayError
from .ids import format_id
from .messages import (
    MAX_ID,
    Command,
    Describe,
    EntityInfo,
    LightState,
    MessageError,
    Ping,
    Pong,
    Result,
    State,
    StateValue,
    Unpair,
    encode,
    parse_device_message,
)
from .session import (
    InitiatorSession,
    Kind,
    ResetReason,
    SessionError,
    SessionReset,
    encode_reset,
)

_LOGGER = logging.getLogger(__name__)

COMMAND_TIMEOUT: Final = 10.0
HANDSHAKE_TIMEOUT: Final = 15.0
MAX_HANDSHAKE_BACKOFF: Final = 60.0
PRESENCE_GRACE: Final = 3.0


class DeviceError(Exception):
    """Base of the errors a command can raise."""


class DeviceOffline(DeviceError):
    """No session with the device (relay down, device offline, handshake pending)."""


class CommandTimeout(DeviceError):
    """The device did not answer in time."""


class CommandRejected(DeviceError):
    """The device answered `ok: false`; `error` is its reason."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class KeyMismatch(DeviceError):
    """The device presented a static key other than the pinned one."""


class LinkState(StrEnum):
    OFFLINE = "offline"  # no relay connection or device not connected
    HANDSHAKING = "handshaking"
    WAITING_DESCRIBE = "waiting_describe"
    READY = "ready"
    KEY_MISMATCH = "key_mismatch"  # answered with another key; only the pinned one opens a session
    NOT_PAIRED = "not_paired"  # the device no longer knows this controller


type SendSession = Callable[[bytes, bytes], Awaitable[None]]
type SessionFactory = Callable[[], InitiatorSession]


class DeviceLink:
    """Session state for one paired device."""

    def __init__(
        self,
        device_id: bytes,
        device_static_pub: bytes,
        new_session: SessionFactory,
        send: SendSession,
        *,
        on_key_mismatch: Callable[[DeviceLink, bytes], None] | None = None,
        on_describe: Callable[[DeviceLink], None] | None = None,
        command_timeout: float = COMMAND_TIMEOUT,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.device_id = device_id
        self.device_static_pub = device_static_pub
        self.name = format_id(device_id)
        self._new_session = new_session
        self._send = send
        self._on_key_mismatch = on_key_mismatch
        self._on_describe = on_describe
        self.command_timeout = command_timeout
        self.handshake_timeout = handshake_timeout
        self.state = LinkState.OFFLINE
        self.describe: Describe | None = None
        self.values: dict[str, StateValue] = {}
        self.presented_key: bytes | None = None
        self.handshakes = 0
        self.session_started: float | None = None
        self._session: InitiatorSession | None = None
        self._pending: dict[int, asyncio.Future[Result]] = {}
        # Command ids must not repeat while the device remembers results (§7), and the
        # device's memory outlives our sessions and restarts: start at a random id.
        self._ids = itertools.count(secrets.randbelow(MAX_ID) + 1)
        self._listeners: list[Callable[[], None]] = []
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._failures = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._relay_up = False

    # ---- observers -------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.state is LinkState.READY

    @property
    def entities(self) -> tuple[EntityInfo, ...]:
        return self.describe.entities if self.describe else ()

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def _set_state(self, state: LinkState) -> None:
        if state is not self.state:
            was_available = self.available
            self.state = state
            if was_available != self.available:
                if self.available:
                    _LOGGER.info("Device %s is available", self.name)
                else:
                    _LOGGER.info("Device %s is unavailable (%s)", self.name, state)
            self._notify()

    # ---- events from the hub ---------------------------------------------------------

    def relay_up(self, *, immediate: bool = False) -> None:
        """The relay connection is authenticated. The relay then reports which devices
        are online (PRESENCE), which starts their handshakes; presence is only a hint,
        so a device it did not mention is tried shortly after anyway."""
        self._relay_up = True
        self._failures = 0
        if immediate:
            self.start_handshake()
            return
        self._cancel_timer()
        self._handshake_timer = asyncio.get_running_loop().call_later(
            PRESENCE_GRACE, self._handshake_if_idle
        )

    def _handshake_if_idle(self) -> None:
        self._handshake_timer = None
        if self.state in (LinkState.OFFLINE, LinkState.NOT_PAIRED):
            self.start_handshake()

    def relay_down(self) -> None:
        self._relay_up = False
        self._drop(LinkState.OFFLINE)

    def presence(self, online: bool) -> None:
        if online:
            # A device that just connected has no session any more.
            self._failures = 0
            self.start_handshake()
        else:
            self._drop(LinkState.OFFLINE)

    def relay_error(self, code: int) -> None:
        if code in (RelayError.PEER_OFFLINE, RelayError.NOT_PERMITTED):
            # Offline: PRESENCE will say when it is back; retry slowly in case it does not.
            self._drop(LinkState.OFFLINE)
            self._retry_later()

    def stop(self) -> None:
        self._relay_up = False
        self._drop(LinkState.OFFLINE)
        for task in self._tasks:
            task.cancel()

    # ---- session ---------------------------------------------------------------------

    def start_handshake(self) -> None:
        # One handshake at a time: a second HANDSHAKE1 would make the device's answer
        # to the first one look like a failed handshake (and so on, forever).
        if self.state is LinkState.HANDSHAKING or not self._relay_up:
            return
        self._cancel_timer()
        self._fail_pending(DeviceOffline("a new session is starting"))
        self._session = self._new_session()
        self.handshakes += 1
        payload = self._session.start()
        self._set_state(LinkState.HANDSHAKING)
        self._spawn(self._send_payload(payload))
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self.handshake_timeout, self._handshake_expired)

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if self.state in (LinkState.HANDSHAKING, LinkState.WAITING_DESCRIBE):
            _LOGGER.debug("Handshake with %s timed out", self.name)
            self._session = None
            self._set_state(LinkState.OFFLINE)
            self._retry_later()

    def _retry_later(self) -> None:
        """Handshake again after a capped exponential delay (a device that keeps failing
        must not make us flood it)."""
        if not self._relay_up:
            return
        self._failures += 1
        delay = min(MAX_HANDSHAKE_BACKOFF, 2.0 ** min(self._failures, 6))
        self._cancel_timer()
        self._handshake_timer = asyncio.get_running_loop().call_later(delay, self.start_handshake)

    def _cancel_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _drop(self, state: LinkState) -> None:
        self._cancel_timer()
        self._session = None
        self.session_started = None
        self._fail_pending(DeviceOffline("the device is offline"))
        self._set_state(state)

    def _fail_pending(self, err: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(err)
        self._pending.clear()

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def runner() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(runner())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_payload(self, payload: bytes) -> None:
        try:
            await self._send(self.device_id, payload)
        except Exception as err:  # the connection logs its own failures
            _LOGGER.debug("Sending to %s failed: %s", self.name, err)

    def session_frame(self, payload: bytes) -> None:
        """A SESSION frame from this device."""
        if self.state is LinkState.KEY_MISMATCH:
            return
        session = self._session
        kind = payload[0] if payload else 0
        if session is None:
            if kind == Kind.RESET:
                self._on_reset(payload)
            elif kind == Kind.TRANSPORT and self._handshake_timer is None:
                # The device thinks a session is open: tell it (§6) and handshake.
                self._spawn(self._send_payload(encode_reset(ResetReason.NO_SESSION)))
                self.start_handshake()
            return
        if kind == Kind.TRANSPORT and self.state is LinkState.HANDSHAKING:
            return  # left over from the session being replaced
        try:
            plaintext = session.receive(payload)
        except SessionReset as reset:
            self._on_reset_exc(reset)
            return
        except SessionError as err:  # any failure ends the session (§6)
            _LOGGER.warning("Session with %s failed: %s", self.name, err)
            if err.reply is not None:
                self._spawn(self._send_payload(err.reply))
            self._drop(LinkState.OFFLINE)
            self._retry_later()
            return
        if plaintext is None:
            if self.state is LinkState.HANDSHAKING:
                self._failures = 0
                self.session_started = time.monotonic()
                self._set_state(LinkState.WAITING_DESCRIBE)
            return
        try:
            message = parse_device_message(plaintext)
        except MessageError as err:
            _LOGGER.warning("Device %s sent an invalid message: %s", self.name, err)
            self._spawn(self._send_payload(encode_reset(ResetReason.PROTOCOL_ERROR)))
            self._drop(LinkState.OFFLINE)
            self._retry_later()
            return
        self._on_message(message)
        if session.needs_rekey:
            self.start_handshake()

    def _on_reset(self, payload: bytes) -> None:
        if len(payload) not in (2, 34):
            return  # malformed: RESET is only a hint anyway
        self._handle_reset(payload[1], payload[2:] if len(payload) == 34 else None)

    def _on_reset_exc(self, reset: SessionReset) -> None:
        self._handle_reset(reset.reason, reset.device_key)

    def _handle_reset(self, reason: int, key: bytes | None) -> None:
        if key is not None and not hmac.compare_digest(key, self.device_static_pub):
            # Another static key is never accepted (§6) and is surfaced to the user. RESET
            # is unauthenticated, though, so it must not cut off a genuine device either:
            # keep offering sessions to the pinned key; one that opens clears the alarm.
            _LOGGER.error("Device %s presented a different static key; refusing it", self.name)
            self.presented_key = key
            self._drop(LinkState.KEY_MISMATCH)
            if self._on_key_mismatch is not None:
                self._on_key_mismatch(self, key)
            self._retry_later()
            return
        if reason in {ResetReason.NOT_PAIRED, ResetReason.HANDSHAKE_FAILED}:
            _LOGGER.warning("Device %s does not recognize this controller", self.name)
            self._drop(LinkState.NOT_PAIRED)
            self._retry_later()
            return
        _LOGGER.debug("Device %s reset the session (reason %s)", self.name, reason)
        self._drop(LinkState.OFFLINE)
        if reason in (ResetReason.NO_SESSION, ResetReason.LIMIT_REACHED):
            self._failures = 0
            self.start_handshake()
        else:
            self._retry_later()

    def _on_message(self, message: Describe | State | Result | Ping | Pong) -> None:
        match message:
            case Describe():
                self.describe = message
                if self._on_describe is not None:
                    self._on_describe(self)
                self._notify()
            case State(values=values):
                known = {e.key for e in self.entities}
                self.values.update({k: v for k, v in values.items() if k in known})
                if self.state is LinkState.WAITING_DESCRIBE and self.describe is not None:
                    self._cancel_timer()
                    # A session with the pinned key proves the device kept its key.
                    self.presented_key = None
                    self._set_state(LinkState.READY)
                else:
                    self._notify()
            case Result(id=cid):
                if (future := self._pending.pop(cid, None)) is not None and not future.done():
                    future.set_result(message)
            case Ping(id=cid):
                self._spawn(self._send_message(Pong(cid)))
            case Pong():
                pass

    async def _send_message(self, message: Command | Ping | Pong | Unpair) -> None:
        session = self._session
        if session is None:
            raise DeviceOffline("no session with the device")
        await self._send(self.device_id, session.encrypt(encode(message)))

    # ---- commands --------------------------------------------------------------------

    def _next_id(self) -> int:
        return (next(self._ids) - 1) % MAX_ID + 1

    async def _request(self, message: Command | Unpair, time_limit: float | None) -> Result:
        if not self.available and self.presented_key is not None:
            raise KeyMismatch("the device presented a different key")
        if not self.available or self._session is None:
            raise DeviceOffline("the device is not available")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending[message.id] = future
        try:
            await self._send_message(message)
            async with asyncio.timeout(time_limit or self.command_timeout):
                result = await future
        except TimeoutError:
            raise CommandTimeout("the device did not answer") from None
        except DeviceError:
            raise
        except Exception as err:
            raise DeviceOffline(str(err)) from err
        finally:
            self._pending.pop(message.id, None)
        if not result.ok:
            raise CommandRejected(result.error or "rejected")
        if self._session is not None and self._session.needs_rekey:
            self.start_handshake()
        return result

    async def command(
        self, key: str, action: str, brightness: int | None = None, time_limit: float | None = None
    ) -> None:
        """Send a command and wait for the device's result.

        `ok` means the device carried the action out, so the value it implies is applied
        at once; the `state` the device pushes next confirms it (or corrects it).
        """
        await self._request(Command(self._next_id(), key, action, brightness), time_limit)
        kind = next((e.kind for e in self.entities if e.key == key), None)
        current = self.values.get(key)
        if kind == "switch" and action in ("turn_on", "turn_off"):
            self.values[key] = action == "turn_on"
        elif kind == "light" and action in ("turn_on", "turn_off"):
            level = current.brightness if isinstance(current, LightState) else 255
            self.values[key] = LightState(action == "turn_on", brightness or level)
        else:
            return
        if self.values[key] != current:
            self._notify()

    async def unpair(self, time_limit: float | None = None) -> None:
        """Ask the device to forget this controller."""
        await self._request(Unpair(self._next_id()), time_limit)
        self._drop(LinkState.NOT_PAIRED)
