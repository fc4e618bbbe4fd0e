"""Simulated HomeSeal devices for the soak run, many per process.

Each one speaks the real protocol over its own websocket: §4 relay authentication,
§5 pairing as the SPAKE2+ Verifier (for devices given a verifier), §6 Noise KK as
the responder, §7 messages (describe, state, command → result, ping → pong). It
holds a switch `relay`, a light `lamp`, a sensor `temp` and a sensor `stamp`
whose value is the CLOCK_MONOTONIC time in ms when the state was sent, so the
controller can measure state-push latency.

Run as `python -m benchmarks.soak_devices CONFIG.json` from the repository root.
Protocol with the parent (one line each): stdout `{"ready": n}` once every device
is authenticated; stdin `go` starts the state pushes, `stop` ends them and answers
with one JSON line of counters and errors; `quit` (or EOF) disconnects and exits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from homeseal_protocol import pairing
from homeseal_protocol.crypto import spake2plus
from homeseal_protocol.crypto.noise import CipherState, HandshakeState
from homeseal_protocol.envelope import FrameType
from homeseal_protocol.errors import ConfirmationError, MessageError, NoiseError
from homeseal_protocol.ids import endpoint_id, format_id
from homeseal_protocol.messages import Command, Ping, Pong, Unpair, parse_controller_message
from homeseal_protocol.relay_auth import ROLE_DEVICE
from homeseal_protocol.session import (
    HANDSHAKE_LEN,
    PROTOCOL_NAME,
    Kind,
    ResetReason,
    encode_reset,
    prologue,
)
from testbed.endpoints import Endpoint
from testbed.wsclient import WsRelayClient, connect

ENTITIES = [
    {"key": "relay", "kind": "switch", "name": "Relay"},
    {"key": "lamp", "kind": "light", "name": "Lamp"},
    {"key": "temp", "kind": "sensor", "name": "Temperature", "device_class": "temperature",
     "unit": "°C", "state_class": "measurement"},
    {"key": "stamp", "kind": "sensor", "name": "Send time", "unit": "ms"},
]  # fmt: skip
PAIR_LIMIT = 20  # failed attempts per window (§5.3)
MAX_ERRORS_KEPT = 50


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Stats:
    def __init__(self) -> None:
        self.errors = 0
        self.messages: list[str] = []
        self.handshakes = 0
        self.commands = 0
        self.duplicate_commands = 0
        self.states = 0
        self.frames_in = 0
        self.frames_out = 0
        self.pairings = 0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.messages) < MAX_ERRORS_KEPT:
            self.messages.append(text)


class SimDevice:
    """One simulated device: its key, its pinned controller, its session, its pins."""

    def __init__(self, spec: dict[str, Any], stats: Stats) -> None:
        self.key = X25519PrivateKey.from_private_bytes(bytes.fromhex(spec["priv"]))
        self.stats = stats
        self.sock: WsRelayClient | None = None
        self.id = b""
        self.name = ""
        self.controller_pub: bytes | None = None
        self.controller_id: bytes | None = None
        if spec.get("controller_pub"):
            self._pin(bytes.fromhex(spec["controller_pub"]))
        verifier = spec.get("verifier")
        self.verifier_params = verifier  # w0, L, salt, iterations: never the code
        self._pake: spake2plus.Verifier | None = None
        self._pake_peer: bytes | None = None
        self._params: tuple[bytes, bytes] = (b"", b"")  # for the pairing context (§5.1)
        self.failures = 0
        self.send_cs: CipherState | None = None
        self.recv_cs: CipherState | None = None
        # A new session waits for the controller's first message on it (§6.2).
        self.pending: tuple[CipherState, CipherState] | None = None
        self.relay = False
        self.lamp = {"on": False, "brightness": 128}
        self.temp = 20.0
        self.results: dict[int, dict[str, Any]] = {}  # last 32 command results (§7)
        self.closing = False

    def _pin(self, pub: bytes) -> None:
        self.controller_pub = pub
        self.controller_id = endpoint_id(pub)

    @property
    def session_open(self) -> bool:
        return self.send_cs is not None

    async def connect(self, host: str, port: int) -> None:
        endpoint = Endpoint(ROLE_DEVICE, self.key)
        self.id = endpoint.id
        self.name = format_id(self.id)
        self.sock = await connect(
            host, port, endpoint, on_frame=self._on_frame, on_close=self._on_close
        )

    def _on_close(self, code: int) -> None:
        self.send_cs = self.recv_cs = self.pending = None
        if not self.closing:
            self.stats.error(f"{self.name}: relay connection closed ({code})")

    def _send(self, frame_type: int, peer: bytes, payload: bytes = b"") -> None:
        assert self.sock is not None
        self.stats.frames_out += 1
        self.sock.send(bytes((frame_type,)) + peer + payload)

    # -- frames from the relay

    def _on_frame(self, frame: bytes) -> None:
        self.stats.frames_in += 1
        if len(frame) < 11:
            self.stats.error(f"{self.name}: short frame from the relay")
            return
        ftype, peer, payload = frame[0], frame[1:11], frame[11:]
        if ftype == FrameType.SESSION:
            self._on_session(peer, payload)
        elif ftype in (FrameType.PAIR_START, FrameType.PAIR):
            self._on_pair(peer, payload)
        elif ftype == FrameType.CLAIMED:
            self.stats.pairings += 1
        elif ftype == FrameType.ERROR:
            code = payload[0] if payload else 0
            self.stats.error(f"{self.name}: relay ERROR {code} for {format_id(peer)}")
        else:
            self.stats.error(f"{self.name}: unexpected frame type 0x{ftype:02x}")

    # -- §6 session, responder

    def _on_session(self, peer: bytes, payload: bytes) -> None:
        if not payload:
            self.stats.error(f"{self.name}: empty SESSION payload")
            return
        if self.controller_pub is None or self.controller_id is None:
            self.stats.error(f"{self.name}: SESSION while not paired")
            self._send(FrameType.SESSION, peer, encode_reset(ResetReason.NOT_PAIRED))
            return
        if not hmac.compare_digest(peer, self.controller_id):
            self.stats.error(f"{self.name}: SESSION from a controller it does not know")
            self._send(FrameType.SESSION, peer, encode_reset(ResetReason.NOT_PAIRED))
            return
        kind, body = payload[0], payload[1:]
        if kind == Kind.HANDSHAKE1:
            self._on_handshake1(peer, body)
        elif kind == Kind.TRANSPORT:
            self._on_transport(peer, body)
        elif kind == Kind.RESET:
            self.stats.error(f"{self.name}: controller sent RESET {body[:1].hex()}")
        else:
            self.stats.error(f"{self.name}: SESSION kind 0x{kind:02x}")

    def _on_handshake1(self, peer: bytes, body: bytes) -> None:
        assert self.controller_pub is not None
        assert self.controller_id is not None
        handshake = HandshakeState(
            PROTOCOL_NAME,
            initiator=False,
            prologue=prologue(self.id, self.controller_id),
            s=self.key,
            rs=self.controller_pub,
        )
        try:
            if len(body) != HANDSHAKE_LEN:
                raise NoiseError("HANDSHAKE1 has the wrong length")
            handshake.read_message(body)
            reply = handshake.write_message(b"")
        except NoiseError as err:
            # A bad HANDSHAKE1 does not touch an open session (firmware behaviour).
            self.stats.error(f"{self.name}: HANDSHAKE1 failed: {err}")
            self._send(FrameType.SESSION, peer, encode_reset(ResetReason.HANDSHAKE_FAILED))
            return
        self.stats.handshakes += 1
        self._send(FrameType.SESSION, peer, bytes((Kind.HANDSHAKE2,)) + reply)
        self.pending = handshake.transport()

    def _confirm(self, body: bytes) -> bytes | None:
        """The controller's first message on the pending session switches to it."""
        if self.pending is None:
            return None
        send, recv = self.pending
        try:
            plaintext = recv.decrypt_with_ad(b"", body)
        except NoiseError:
            return None
        self.send_cs, self.recv_cs, self.pending = send, recv, None
        self._app(
            {"t": "describe", "fw": "soak-sim", "model": "sim", "name": self.name,
             "entities": ENTITIES}
        )  # fmt: skip
        self._app({"t": "state", "s": self._full_state()})
        return plaintext

    def _full_state(self) -> dict[str, Any]:
        return {
            "relay": self.relay,
            "lamp": dict(self.lamp),
            "temp": self.temp,
            "stamp": round(time.monotonic() * 1000, 3),
        }

    def _app(self, message: dict[str, Any]) -> None:
        if self.send_cs is None or self.controller_id is None:
            return
        ciphertext = self.send_cs.encrypt_with_ad(b"", dumps(message))
        self._send(FrameType.SESSION, self.controller_id, bytes((Kind.TRANSPORT,)) + ciphertext)

    def _end_session(self, peer: bytes, reason: int, why: str) -> None:
        self.stats.error(f"{self.name}: {why}")
        self.send_cs = self.recv_cs = None
        self._send(FrameType.SESSION, peer, encode_reset(reason))

    def _on_transport(self, peer: bytes, body: bytes) -> None:
        plaintext = self._confirm(body)
        if plaintext is None:
            if self.recv_cs is None:
                self._end_session(peer, ResetReason.NO_SESSION, "TRANSPORT with no session")
                return
            try:
                plaintext = self.recv_cs.decrypt_with_ad(b"", body)
            except NoiseError:
                self._end_session(peer, ResetReason.DECRYPT_FAILED, "TRANSPORT did not decrypt")
                return
        try:
            message = parse_controller_message(plaintext)
        except MessageError as err:
            self._end_session(peer, ResetReason.PROTOCOL_ERROR, f"bad message: {err}")
            return
        match message:
            case Command():
                self._command(message)
            case Ping(id=cid):
                self._app({"t": "pong", "id": cid})
            case Pong():
                pass
            case Unpair(id=cid):
                self.stats.error(f"{self.name}: unexpected unpair")
                self._app({"t": "result", "id": cid, "ok": False, "error": "unsupported_action"})

    def _command(self, command: Command) -> None:
        if (stored := self.results.get(command.id)) is not None:
            self.stats.duplicate_commands += 1
            self._app(stored)
            return
        self.stats.commands += 1
        changed: dict[str, Any] = {}
        result: dict[str, Any] = {"t": "result", "id": command.id, "ok": True}
        if command.key == "relay" and command.action in ("turn_on", "turn_off"):
            on = command.action == "turn_on"
            if on != self.relay:
                self.relay = on
                changed["relay"] = on
        elif command.key == "lamp" and command.action in ("turn_on", "turn_off"):
            lamp = dict(self.lamp)
            lamp["on"] = command.action == "turn_on"
            if command.brightness:
                lamp["brightness"] = command.brightness
            if lamp != self.lamp:
                self.lamp = lamp
                changed["lamp"] = dict(lamp)
        elif command.key in ("relay", "lamp"):
            result = {"t": "result", "id": command.id, "ok": False, "error": "unsupported_action"}
        else:
            result = {"t": "result", "id": command.id, "ok": False, "error": "unknown_entity"}
        self.results[command.id] = result
        if len(self.results) > 32:
            del self.results[next(iter(self.results))]
        self._app(result)
        if changed:
            self._app({"t": "state", "s": changed})

    def push_state(self) -> None:
        """One state push: a new temperature and the send time."""
        self.temp = round(15 + random.random() * 10, 2)
        self.stats.states += 1
        self._app({"t": "state", "s": {"temp": self.temp,
                                       "stamp": round(time.monotonic() * 1000, 3)}})  # fmt: skip

    # -- §5 pairing, Verifier (only devices given a verifier)

    def _pair_error(self, peer: bytes, code: int, why: str) -> None:
        self.stats.error(f"{self.name}: pairing failed: {why}")
        left = max(PAIR_LIMIT - self.failures, 0)
        self._send(FrameType.PAIR, peer, pairing.PairErrorMessage(code, left).encode())

    def _on_pair(self, peer: bytes, data: bytes) -> None:
        params = self.verifier_params
        if params is None or self.controller_pub is not None:
            self._pair_error(peer, pairing.ErrorCode.NOT_IN_PAIRING_MODE, "not in pairing mode")
            return
        try:
            message = pairing.decode_message(data)
        except ValueError as err:
            self._pair_error(peer, pairing.ErrorCode.BAD_MESSAGE, str(err))
            return
        match message:
            case pairing.PbkdfParamRequest(version=1):
                reply = pairing.PbkdfParamResponse(
                    params["iterations"], bytes.fromhex(params["salt"]), PAIR_LIMIT - self.failures
                ).encode()
                self._params = (data, reply)
                self._send(FrameType.PAIR, peer, reply)
            case pairing.Pake1(share_p=share_p):
                self.failures += 1  # counted before answering (§5.3 step 3)
                self._pake_peer = peer
                self._pake = spake2plus.Verifier(
                    pairing.pairing_context(peer, *self._params), pairing.ID_PROVER, self.id,
                    bytes.fromhex(params["w0"]), bytes.fromhex(params["L"]),
                )  # fmt: skip
                try:
                    share_v, confirm_v = self._pake.respond(share_p)
                except ValueError as err:
                    self._pair_error(peer, pairing.ErrorCode.BAD_MESSAGE, str(err))
                    return
                self._send(FrameType.PAIR, peer, pairing.Pake2(share_v, confirm_v).encode())
            case pairing.Pake3(confirm_p=confirm_p, sealed_controller_key=sealed):
                if self._pake is None or self._pake_peer != peer:
                    self._pair_error(peer, pairing.ErrorCode.BAD_MESSAGE, "PAKE3 out of order")
                    return
                try:
                    k_shared = self._pake.finish(confirm_p)
                except ConfirmationError:
                    self._pair_error(peer, pairing.ErrorCode.WRONG_CODE, "wrong code")
                    return
                k_p, k_v = pairing.pairing_keys(k_shared)
                try:
                    pub = pairing.unseal_static(k_p, peer, self.id, sealed)
                    pairing.check_identity(pub, peer)
                except Exception as err:
                    self._pair_error(peer, pairing.ErrorCode.IDENTITY_MISMATCH, str(err))
                    return
                self._pin(pub)
                self.failures = 0
                assert self.sock is not None
                sealed_device = pairing.seal_static(k_v, peer, self.id, self.sock.endpoint.pub)
                self._send(FrameType.PAIR, peer, pairing.PairDone(sealed_device).encode())
                self.sock.send_control(FrameType.CLAIM, peer)
                self.stats.frames_out += 1
            case _:
                self._pair_error(peer, pairing.ErrorCode.BAD_MESSAGE, f"unexpected {message}")


class Simulator:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.stats = Stats()
        self.devices = [SimDevice(spec, self.stats) for spec in config["devices"]]
        self.pushing = False

    async def connect_all(self) -> None:
        host, port = self.config["host"], self.config["port"]
        sem = asyncio.Semaphore(100)  # connection storms hurt the shared machine

        async def one(device: SimDevice) -> None:
            async with sem:
                try:
                    await device.connect(host, port)
                except (OSError, ConnectionError, TimeoutError) as err:
                    self.stats.error(f"connect failed: {err!r}")

        await asyncio.gather(*(one(d) for d in self.devices))

    async def push_loop(self) -> None:
        """State pushes at a fixed total rate from random devices with a session."""
        rate = float(self.config["state_rate"])
        if rate <= 0:
            return
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while self.pushing:
            due = int((loop.time() - start) * rate)
            while sent < due:
                sent += 1
                device = random.choice(self.devices)
                if device.session_open:
                    device.push_state()
                else:
                    self.stats.error(f"{device.name}: no session for a state push")
            await asyncio.sleep(0.02)

    def report(self) -> dict[str, Any]:
        s = self.stats
        return {
            "errors": s.errors, "error_messages": s.messages, "handshakes": s.handshakes,
            "commands": s.commands, "duplicate_commands": s.duplicate_commands,
            "states": s.states, "frames_in": s.frames_in, "frames_out": s.frames_out,
            "pairings": s.pairings,
            "sessions_open": sum(d.session_open for d in self.devices),
            "cpu_seconds": time.process_time(),
        }  # fmt: skip

    async def run(self) -> None:
        await self.connect_all()
        print(json.dumps({"ready": sum(bool(d.sock and d.sock.authenticated)
                                       for d in self.devices)}), flush=True)  # fmt: skip
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        pusher: asyncio.Task[None] | None = None
        while line := (await reader.readline()).decode().strip():
            if line == "go" and pusher is None:
                self.pushing = True
                pusher = asyncio.create_task(self.push_loop())
            elif line == "stop":
                self.pushing = False
                if pusher is not None:
                    await pusher
                    pusher = None
                print(json.dumps(self.report()), flush=True)
            elif line == "quit":
                break
        for device in self.devices:
            device.closing = True
            if device.sock is not None:
                device.sock.close()
        await asyncio.sleep(0.2)


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(Simulator(config).run())


if __name__ == "__main__":
    main()
