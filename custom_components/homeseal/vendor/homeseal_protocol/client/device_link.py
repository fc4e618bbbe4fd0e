"""Per-device session management on top of the Noise session (PROTOCOL §6, §7).

A DeviceLink owns at most one InitiatorSession with its device: it handshakes when the
relay connection comes up or the device appears, re-handshakes after a RESET or before
the session limits, turns `describe` / `state` into cached data, and matches commands
with their results.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from enum import StrEnum
from typing import Final

from ..envelope import RelayError
from ..errors import (
    CommandRejected,
    CommandTimeout,
    DeviceError,
    DeviceOffline,
    MessageError,
    NotRecognised,
    SessionError,
    SessionProtocolError,
    SessionReset,
)
from ..ids import format_id
from ..messages import (
    MAX_ID,
    Command,
    Describe,
    Direction,
    EntityInfo,
    Event,
    EventType,
    FanState,
    LightState,
    Ping,
    Pong,
    Result,
    State,
    StateValue,
    Unpair,
    check_state,
    encode,
    parse_device_message,
)
from ..session import (
    InitiatorSession,
    Kind,
    Reset,
    ResetReason,
    decode_reset,
    encode_reset,
    kind_of,
)
from .backoff import handshake_retry_delay

_LOGGER = logging.getLogger(__name__)

COMMAND_TIMEOUT: Final = 10.0
HANDSHAKE_TIMEOUT: Final = 15.0
PRESENCE_GRACE: Final = 3.0
# Handshakes are started by unauthenticated hints (PRESENCE, RESET, a stray TRANSPORT):
# whatever their number, at most one per this interval, and after failures the capped
# exponential backoff of client/backoff.py. Only an opened session resets the backoff.
MIN_HANDSHAKE_INTERVAL: Final = 1.0
# A device that keeps answering "not paired" / "handshake failed" this long, while the
# relay says it is online, is reported as no longer recognising this controller.
NOT_RECOGNISED_AFTER: Final = 600.0


class LinkState(StrEnum):
    OFFLINE = "offline"  # no relay connection or device not connected
    HANDSHAKING = "handshaking"
    WAITING_DESCRIBE = "waiting_describe"
    READY = "ready"
    NOT_PAIRED = "not_paired"  # the device says it does not know this controller (a hint)


type SendSession = Callable[[bytes, bytes], Awaitable[None]]
type SessionFactory = Callable[[], InitiatorSession]


class DeviceLink:
    """Session state for one paired device (§6, §7): the layer between the relay
    connection's SESSION frames and the entities."""

    def __init__(
        self,
        device_id: bytes,
        device_static_pub: bytes,
        new_session: SessionFactory,
        send: SendSession,
        *,
        describe: Describe | None = None,
        on_not_recognised: Callable[[DeviceLink], None] | None = None,
        on_describe: Callable[[DeviceLink], None] | None = None,
        command_timeout: float = COMMAND_TIMEOUT,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.device_id = device_id
        self.device_static_pub = device_static_pub
        self.id_text = format_id(device_id)
        self._new_session = new_session
        self._send = send
        self._on_not_recognised = on_not_recognised
        self._on_describe = on_describe
        self.command_timeout = command_timeout
        self.handshake_timeout = handshake_timeout
        self.state = LinkState.OFFLINE
        # The last describe, cached across restarts until the device sends a new one.
        self.describe: Describe | None = describe
        self.values: dict[str, StateValue] = {}
        self.handshakes = 0
        # Since when the device keeps refusing our handshakes (None: it has not), and
        # whether that has lasted long enough to tell the user.
        self.refused_since: float | None = None
        self.not_recognised = False
        self.not_recognised_after = NOT_RECOGNISED_AFTER
        self._online_hint = False
        self._session: InitiatorSession | None = None
        # The session being replaced: the device answers on it until our first message
        # on the new one confirms that one (§6.2), so its last messages still count.
        self._previous: InitiatorSession | None = None
        self._pending: dict[int, asyncio.Future[Result]] = {}
        # Command ids must not repeat while the device remembers results (§7), and the
        # device's memory outlives our sessions and restarts: start at a random id.
        self._ids = itertools.count(secrets.randbelow(MAX_ID) + 1)
        self._listeners: list[Callable[[], None]] = []
        self._event_listeners: list[Callable[[str, EventType], None]] = []
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._failures = 0  # handshakes in a row that opened no session
        self._last_start = float("-inf")
        # The pacing of handshakes (tests make it faster).
        self.min_handshake_interval = MIN_HANDSHAKE_INTERVAL
        self.retry_delay: Callable[[int], float] = handshake_retry_delay
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

    def add_event_listener(self, listener: Callable[[str, EventType], None]) -> Callable[[], None]:
        """Call `listener(key, type)` for each event an event entity sends (§7)."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def _set_state(self, state: LinkState) -> None:
        if state is not self.state:
            was_available = self.available
            self.state = state
            if was_available != self.available:
                if self.available:
                    _LOGGER.info("Device %s is available", self.id_text)
                else:
                    _LOGGER.info("Device %s is unavailable (%s)", self.id_text, state)
            self._notify()

    # ---- events from the hub ---------------------------------------------------------

    def relay_up(self, *, immediate: bool = False) -> None:
        """The relay connection is authenticated. The relay then reports which devices
        are online (PRESENCE), which starts their handshakes; presence is only a hint,
        so a device it did not mention is tried shortly after anyway."""
        self._relay_up = True
        self._failures = 0  # our own, authenticated connection is new: start afresh
        if immediate:
            self._handshake_soon()
            return
        self._cancel_timer()
        self._handshake_timer = asyncio.get_running_loop().call_later(
            PRESENCE_GRACE, self._handshake_if_idle
        )

    def _handshake_if_idle(self) -> None:
        self._handshake_timer = None
        if self.state in (LinkState.OFFLINE, LinkState.NOT_PAIRED):
            self._handshake_soon()

    def relay_down(self) -> None:
        self._relay_up = False
        self._drop(LinkState.OFFLINE)

    def presence(self, online: bool) -> None:
        self._online_hint = online
        if online:
            # A device that just connected has no session any more: handshake at once,
            # whatever the offline probes counted (PRESENCE comes from the relay over
            # our authenticated connection, and the minimum interval still holds).
            self._failures = 0
            self._handshake_soon()
        else:
            # PRESENCE will say when it is back; probe slowly in case it does not (a
            # device that left our account is "offline" to us, and only a probe, which
            # the relay refuses as not_permitted, can tell).
            self._drop(LinkState.OFFLINE)
            self._retry_later()

    def relay_error(self, code: int) -> None:
        if code == RelayError.PEER_OFFLINE:
            self._online_hint = False
            self._drop(LinkState.OFFLINE)
            self._retry_later()
        elif code == RelayError.NOT_PERMITTED:
            # Connected, but not ours to reach (§3.1): it released itself (a factory
            # reset) or was claimed by another account. A refusal, while online.
            self._online_hint = True
            self._refused()
            self._drop(LinkState.NOT_PAIRED)
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
        old = self._session
        self._previous = old if old is not None and old.is_open else None
        self._session = self._new_session()
        self.handshakes += 1
        self._last_start = asyncio.get_running_loop().time()
        payload = self._session.start()
        self._set_state(LinkState.HANDSHAKING)
        self._spawn(self._send_payload(payload))
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self.handshake_timeout, self._handshake_expired)

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if self.state in (LinkState.HANDSHAKING, LinkState.WAITING_DESCRIBE):
            _LOGGER.debug("Handshake with %s timed out", self.id_text)
            self._session = None
            self._set_state(LinkState.OFFLINE)
            self._retry_later()

    def _retry_later(self) -> None:
        """A handshake failed: try again after a capped exponential delay (a device that
        keeps failing must not make us flood it)."""
        self._failures += 1
        self._handshake_soon()

    def _handshake_soon(self) -> None:
        """Start a handshake as soon as the backoff allows: at once the first time, then
        no sooner than MIN_HANDSHAKE_INTERVAL, and after failures the backoff's delay
        after the last start. Whoever asks (an unauthenticated RESET or PRESENCE
        included), handshakes never come faster."""
        if not self._relay_up or self.state is LinkState.HANDSHAKING:
            return
        loop = asyncio.get_running_loop()
        gap = self.retry_delay(self._failures) if self._failures else self.min_handshake_interval
        wait = self._last_start + gap - loop.time()
        self._cancel_timer()
        if wait <= 0:
            self.start_handshake()
        else:
            self._handshake_timer = loop.call_later(wait, self._deferred_start)

    def _deferred_start(self) -> None:
        self._handshake_timer = None
        self.start_handshake()

    def _cancel_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _drop(self, state: LinkState) -> None:
        self._cancel_timer()
        self._session = None
        self._previous = None
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
            _LOGGER.debug("Sending to %s failed: %s", self.id_text, err)

    def session_frame(self, payload: bytes) -> None:
        """A SESSION frame from this device."""
        session = self._session
        if session is None:
            self._without_session(payload)
            return
        if kind_of(payload) is Kind.TRANSPORT:
            if self._previous is not None and self._from_previous(self._previous, payload):
                return
            if self.state is LinkState.HANDSHAKING:
                return  # from a session already gone: nothing to read it with
        try:
            plaintext = session.receive(payload)
        except SessionReset as reset:
            self._on_reset(Reset(reset.reason))
            return
        except SessionError as err:  # any failure ends the session (§6)
            _LOGGER.warning("Session with %s failed: %s", self.id_text, err)
            if err.reply is not None:
                self._spawn(self._send_payload(err.reply))
            self._drop(LinkState.OFFLINE)
            self._retry_later()
            return
        if plaintext is None:
            if self.state is LinkState.HANDSHAKING:
                # HANDSHAKE2 authenticated: the pinned device, with its key, is there.
                self._failures = 0
                self._recognised()
                self._set_state(LinkState.WAITING_DESCRIBE)
                # Our first message confirms the session: until then the device keeps
                # the one it had, so a replayed HANDSHAKE1 cannot end it (§6.2).
                confirmation = session.encrypt(encode(Ping(self._next_id())))
                self._spawn(self._send_payload(confirmation))
            return
        self._previous = None  # the device is on the new session now
        try:
            message = parse_device_message(plaintext)
            if isinstance(message, State):
                check_state(message, self.entities)
        except MessageError as err:
            _LOGGER.warning("Device %s sent an invalid message: %s", self.id_text, err)
            self._spawn(self._send_payload(encode_reset(ResetReason.PROTOCOL_ERROR)))
            self._drop(LinkState.OFFLINE)
            self._retry_later()
            return
        self._on_message(message)
        if session.needs_rekey:
            self.start_handshake()

    def _from_previous(self, previous: InitiatorSession, payload: bytes) -> bool:
        """Read a TRANSPORT message of the session being replaced, if it is one."""
        try:
            plaintext = previous.receive(payload)
            message = parse_device_message(plaintext or b"")
        except (SessionError, MessageError):
            self._previous = None  # not one of its messages: the new session's, then
            return False
        if isinstance(message, State):  # its commands were failed already, its pings moot
            try:
                check_state(message, self.entities)
            except MessageError:
                return True  # the session is going anyway: its bad state is dropped
            self._apply(message)
            self._notify()
        return True

    def _without_session(self, payload: bytes) -> None:
        """A SESSION payload while no session is open or being opened."""
        match kind_of(payload):
            case Kind.RESET:
                try:
                    reset = decode_reset(payload)
                except SessionProtocolError:
                    return  # malformed: RESET is only a hint anyway
                self._on_reset(reset)
            case Kind.TRANSPORT if self._handshake_timer is None:
                # The device thinks a session is open: tell it (§6) and handshake.
                self._spawn(self._send_payload(encode_reset(ResetReason.NO_SESSION)))
                self._handshake_soon()

    def _on_reset(self, reset: Reset) -> None:
        """RESET is unauthenticated (anyone on the path can send one): it may end what we
        were doing and ask for a new handshake, within the backoff; it never pins or
        unpins anything."""
        if self.state is LinkState.HANDSHAKING:
            self._failures += 1
        if reset.reason in {ResetReason.NOT_PAIRED, ResetReason.HANDSHAKE_FAILED}:
            _LOGGER.warning("Device %s does not recognise this controller", self.id_text)
            self._refused()
            self._drop(LinkState.NOT_PAIRED)
        else:
            _LOGGER.debug("Device %s reset the session (%s)", self.id_text, reset.name)
            self._drop(LinkState.OFFLINE)
        self._handshake_soon()

    def _refused(self) -> None:
        """The device (or someone claiming to be it) refused a handshake. Only a refusal
        that lasts while the device is online is reported: it cannot tell an attacker
        from a reset device, so it claims neither (SECURITY.md, L3)."""
        now = asyncio.get_running_loop().time()
        if self.refused_since is None:
            self.refused_since = now
        lasted = now - self.refused_since
        if not self.not_recognised and self._online_hint and lasted >= self.not_recognised_after:
            self.not_recognised = True
            if self._on_not_recognised is not None:
                self._on_not_recognised(self)

    def _recognised(self) -> None:
        self.refused_since = None
        if self.not_recognised:
            self.not_recognised = False
            if self._on_not_recognised is not None:
                self._on_not_recognised(self)

    def _on_message(self, message: Describe | State | Result | Event | Ping | Pong) -> None:
        match message:
            case Describe():
                self.describe = message
                if self._on_describe is not None:
                    self._on_describe(self)
                self._notify()
            case State():
                self._apply(message)
                if self.state is LinkState.WAITING_DESCRIBE and self.describe is not None:
                    self._cancel_timer()
                    self._set_state(LinkState.READY)
                else:
                    self._notify()
            case Event(key=key, type=event_type):
                if any(e.key == key and e.kind == "event" for e in self.entities):
                    for listener in list(self._event_listeners):
                        listener(key, event_type)
            case Result(id=cid):
                if (future := self._pending.pop(cid, None)) is not None and not future.done():
                    future.set_result(message)
            case Ping(id=cid):
                self._spawn(self._send_message(Pong(cid)))
            case Pong():
                pass

    def _apply(self, state: State) -> None:
        known = {e.key for e in self.entities}
        self.values.update({k: v for k, v in state.values.items() if k in known})

    async def _send_message(self, message: Command | Ping | Pong | Unpair) -> None:
        session = self._session
        if session is None:
            raise DeviceOffline("no session with the device")
        await self._send(self.device_id, session.encrypt(encode(message)))

    # ---- commands --------------------------------------------------------------------

    def _next_id(self) -> int:
        return (next(self._ids) - 1) % MAX_ID + 1

    async def _request(self, message: Command | Unpair, time_limit: float | None) -> Result:
        if self.not_recognised:
            raise NotRecognised("the device does not recognise this controller")
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
        self,
        key: str,
        action: str,
        *,
        brightness: int | None = None,
        rgb: tuple[int, int, int] | None = None,
        rgbw: tuple[int, int, int, int] | None = None,
        kelvin: int | None = None,
        percentage: int | None = None,
        value: float | None = None,
        option: str | None = None,
        position: int | None = None,
        direction: Direction | None = None,
        time_limit: float | None = None,
    ) -> None:
        """Send a command and wait for the device's result (arguments: PROTOCOL §7).

        `ok` means the device carried the action out, so the value it implies is applied
        at once; the `state` the device pushes next confirms it (or corrects it: a
        number's value snapped to its step). A cover's motion is the device's to report.
        """
        command = Command(
            self._next_id(),
            key,
            action,
            brightness=brightness,
            rgb=rgb,
            rgbw=rgbw,
            kelvin=kelvin,
            percentage=percentage,
            value=value,
            option=option,
            position=position,
            direction=direction,
        )
        await self._request(command, time_limit)
        kind = next((e.kind for e in self.entities if e.key == key), None)
        current = self.values.get(key)
        expected: StateValue
        match kind, action, current:
            case "switch", "turn_on" | "turn_off", _:
                expected = action == "turn_on"
            case "light", "turn_on" | "turn_off", LightState():
                on = action == "turn_on"
                expected = replace(
                    current,
                    on=on,
                    brightness=brightness or current.brightness,
                    rgb=rgb or current.rgb,
                    rgbw=rgbw or current.rgbw,
                    kelvin=kelvin or current.kelvin,
                )
            case "fan", "turn_on" | "turn_off", FanState():
                expected = replace(
                    current, on=action == "turn_on", percentage=percentage or current.percentage
                )
            case "fan", "set_direction", FanState():
                expected = replace(current, direction=direction)
            case "number", "set", _ if value is not None:
                expected = value
            case "select", "select", _ if option is not None:
                expected = option
            case _:
                return
        if expected != current:
            self.values[key] = expected
            self._notify()

    async def unpair(self, time_limit: float | None = None) -> None:
        """Ask the device to forget this controller."""
        await self._request(Unpair(self._next_id()), time_limit)
        self._drop(LinkState.NOT_PAIRED)
