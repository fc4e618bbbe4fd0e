"""Test harness for the firmware: the real relay process, the firmware on the
MicroPython unix port, and a small controller built from the integration's
sans-IO client classes (ControllerPairing, InitiatorSession) over a real
websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from custom_components.homeseal.client import ids
from custom_components.homeseal.client.envelope import FrameType
from custom_components.homeseal.client.pairing import ControllerPairing
from custom_components.homeseal.client.relay_auth import auth_response, public_bytes
from custom_components.homeseal.client.session import InitiatorSession
from tests.support import FIRMWARE, ROOT, micropython_env, micropython_path

DEVICE_HEAP = "1m"

# Every entity kind, on the simulated pins the tests read and set.
ENTITIES: list[dict[str, Any]] = [
    {"key": "relay1", "kind": "switch", "name": "Relay 1", "pin": 5},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": 6},
    {
        "key": "temp",
        "kind": "sensor",
        "name": "Temperature",
        "pin": 26,
        "scale": 0.01,
        "precision": 2,
        "unit": "°C",
        "device_class": "temperature",
        "state_class": "measurement",
        "interval": 1,
    },
    {"key": "chip", "kind": "sensor", "name": "Chip", "source": "internal_temp", "interval": 1},
    {"key": "door", "kind": "binary_sensor", "name": "Door", "pin": 4, "device_class": "door"},
    {"key": "bell", "kind": "button", "name": "Bell", "pin": 7, "pulse_ms": 100},
]
PAIRING_BUTTON = {"pin": 0, "long_press_ms": 300, "factory_reset_ms": 1200}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(predicate: Any, within: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)


# ---------------------------------------------------------------- the relay


class RelayProcess:
    """`python -m relay_server` on 127.0.0.1 with plain HTTP (tests only)."""

    def __init__(self, workdir: Path, port: int | None = None, *extra: str) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "relay.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_device(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/device"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "relay_server", "--plain-http", "--host", "127.0.0.1",
            "--port", str(self.port), "--db", str(self.workdir / "relay.db"),
            "--key-file", str(self.workdir / "relay.key"), "--log-level", "WARNING",
            *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"relay exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("relay did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def relay_key(self) -> bytes:
        return (self.workdir / "relay.key").read_bytes()


async def new_account(relay_http: str) -> tuple[str, str]:
    """Register a fresh account; returns (username, token)."""
    username = "fw" + secrets.token_hex(6)
    password = "correct horse " + secrets.token_hex(8)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{relay_http}/api/v1/accounts", json={"username": username, "password": password}
        ) as r:
            assert r.status == 201, await r.text()
        async with http.post(
            f"{relay_http}/api/v1/tokens", json={"username": username, "password": password}
        ) as r:
            assert r.status == 201, await r.text()
            token = (await r.json())["token"]
    return username, token


# ---------------------------------------------------------------- the device


def write_config(
    path: Path,
    relay_url: str,
    *,
    entities: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Path:
    cfg: dict[str, Any] = {
        "name": "Test device",
        "relay": {"url": relay_url},
        "pairing_button": PAIRING_BUTTON,
        "entities": ENTITIES if entities is None else entities,
        "state_interval": 60,
    }
    cfg.update(extra)
    path.write_text(json.dumps(cfg))
    return path


class DeviceProcess:
    """The firmware (firmware/main.py) on the unix port, simulated pins, a state dir."""

    def __init__(
        self,
        workdir: Path,
        relay_url: str,
        *,
        config: dict[str, Any] | None = None,
        heapsize: str = DEVICE_HEAP,
        args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        main: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.state = workdir / "state"
        self.config = workdir / "config.json"
        self.relay_url = relay_url
        self.control_port = free_port()
        self.heapsize = heapsize
        self.args = list(args)
        self.env = env
        self.main = main or FIRMWARE / "main.py"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "device.log"
        workdir.mkdir(parents=True, exist_ok=True)
        if config is None:
            write_config(self.config, relay_url)
        else:
            self.config.write_text(json.dumps(config))

    def start(self) -> None:
        cmd = [
            str(micropython_path()), "-X", f"heapsize={self.heapsize}", str(self.main),
            "--config", str(self.config), "--state", str(self.state),
            "--control", f"127.0.0.1:{self.control_port}", *self.args,
        ]  # fmt: skip
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env or micropython_env(),
                cwd=self.workdir,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What the current run printed so far."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.output()))

    async def wait_log(self, pattern: str, within: float = 10.0, count: int = 1) -> re.Match[str]:
        """Wait until `pattern` has been printed `count` times in this run."""

        def found() -> re.Match[str] | None:
            matches = list(re.finditer(pattern, self.output()))
            if len(matches) >= count:
                return matches[count - 1]
            if not self.alive:
                raise AssertionError(f"device exited:\n{self.output()[-3000:]}")
            return None

        try:
            return await wait_until(found, within, f"device log {pattern!r}")  # type: ignore[no-any-return]
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- device output ---\n{self.output()[-3000:]}") from None

    @property
    def identity(self) -> dict[str, Any]:
        return json.loads((self.state / "identity.json").read_text())  # type: ignore[no-any-return]

    @property
    def public_key(self) -> bytes:
        return bytes.fromhex(self.identity["public_key"])

    @property
    def device_id(self) -> bytes:
        return ids.endpoint_id(self.public_key)

    # -- the simulated pins (hw_sim's control socket)

    async def control(self, request: dict[str, Any]) -> dict[str, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.control_port)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
            await writer.wait_closed()
        return json.loads(line)  # type: ignore[no-any-return]

    async def pins(self) -> dict[str, Any]:
        return (await self.control({"op": "get"}))["pins"]  # type: ignore[no-any-return]

    async def pulses(self) -> dict[str, int]:
        return (await self.control({"op": "get"}))["pulses"]  # type: ignore[no-any-return]

    async def set_pin(self, pin: str | int, value: float) -> None:
        resp = await self.control({"op": "set", "pin": str(pin), "value": value})
        assert resp == {"ok": True}, resp

    async def hold_button(self, ms: int) -> None:
        await self.set_pin(PAIRING_BUTTON["pin"], 0)
        await asyncio.sleep(ms / 1000)
        await self.set_pin(PAIRING_BUTTON["pin"], 1)


# ---------------------------------------------------------------- the controller


class Controller:
    """A controller endpoint: relay auth, then frames in and out."""

    def __init__(self, relay_http: str, token: str, key: X25519PrivateKey | None = None) -> None:
        self.relay_http = relay_http
        self.token = token
        self.key = key or X25519PrivateKey.generate()
        self.public = public_bytes(self.key)
        self.id = ids.endpoint_id(self.public)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._frames: asyncio.Queue[tuple[int, bytes, bytes]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.closed_code: int | None = None

    async def connect(self) -> Controller:
        self._http = aiohttp.ClientSession()
        url = self.relay_http.replace("http://", "ws://") + "/ws/controller"
        self._ws = await self._http.ws_connect(
            url,
            protocols=("homeseal.v1",),
            headers={"Authorization": f"Bearer {self.token}"},
            heartbeat=None,
        )
        msg = await self._ws.receive_bytes(timeout=10)
        assert msg[0] == FrameType.AUTH_CHALLENGE, msg
        await self._ws.send_bytes(
            bytes((FrameType.AUTH_RESPONSE,)) + self.id + auth_response(self.key, msg[11:])
        )
        msg = await self._ws.receive_bytes(timeout=10)
        assert msg[0] == FrameType.AUTH_OK, msg
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                self._frames.put_nowait((msg.data[0], msg.data[1:11], msg.data[11:]))
        self.closed_code = self._ws.close_code

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()

    async def send(self, ftype: int, peer: bytes, payload: bytes = b"") -> None:
        assert self._ws is not None
        await self._ws.send_bytes(bytes((ftype,)) + peer + payload)

    async def recv(self, types: Iterable[int], within: float = 10.0) -> tuple[int, bytes, bytes]:
        """The next frame of one of `types` (others, e.g. PRESENCE, are skipped)."""
        wanted = set(types)
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no frame of types {wanted} within {within} s")
            try:
                frame = await asyncio.wait_for(self._frames.get(), left)
            except TimeoutError:
                continue
            if frame[0] in wanted:
                return frame

    def drain(self) -> list[tuple[int, bytes, bytes]]:
        out = []
        while not self._frames.empty():
            out.append(self._frames.get_nowait())
        return out

    async def pair(self, device_id: bytes, code: str) -> bytes:
        """Pair with the given setup code; returns the device's static key.

        Raises the integration's PairingError subclass for a device refusal.
        """
        attempt = ControllerPairing(device_id, self.key, code)
        await self.send(FrameType.PAIR_START, device_id, attempt.start())
        while True:
            ftype, _, payload = await self.recv((FrameType.PAIR, FrameType.ERROR), within=20)
            if ftype == FrameType.ERROR:
                raise AssertionError(f"relay error {payload[0]} during pairing")
            try:
                reply = attempt.receive(payload)
            except Exception as err:
                if getattr(err, "reply", None):
                    await self.send(FrameType.PAIR, device_id, err.reply)  # type: ignore[attr-defined]
                raise
            if reply is None:
                assert attempt.device_static_pub is not None
                return attempt.device_static_pub
            await self.send(FrameType.PAIR, device_id, reply)

    async def open_session(self, device_id: bytes, device_pub: bytes) -> SessionClient:
        s = SessionClient(self, device_id, device_pub)
        await s.open()
        return s


class SessionClient:
    """An open Noise session with the device, plus the state it reported."""

    def __init__(self, ctl: Controller, device_id: bytes, device_pub: bytes) -> None:
        self.ctl = ctl
        self.device_id = device_id
        self.noise = InitiatorSession(ctl.key, device_pub, device_id, ctl.id)
        self.describe: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}
        self.next_id = 1
        self.messages: list[dict[str, Any]] = []

    async def open(self, within: float = 10.0) -> None:
        hs1 = self.noise.start()
        for _ in range(20):
            await self.ctl.send(FrameType.SESSION, self.device_id, hs1)
            ftype, payload = await self._handshake_reply(within)
            if ftype == FrameType.SESSION:
                break
            # The relay records the claim just after PAIR_DONE reaches us, and the
            # device may still be reconnecting: not_permitted / peer_offline, retry.
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("the relay kept refusing HANDSHAKE1")
        assert self.noise.receive(payload) is None
        msg = await self.recv_app(within)
        assert msg["t"] == "describe", msg
        self.describe = msg
        msg = await self.recv_app(within)
        assert msg["t"] == "state", msg

    async def _handshake_reply(self, within: float) -> tuple[int, bytes]:
        """The answer to HANDSHAKE1, skipping late RESETs that answer transport messages
        of an earlier session (no_session, protocol_error, decrypt_failed): a device
        never answers HANDSHAKE1 with those, but one may still be in flight after an
        attack on the previous session."""
        while True:
            ftype, _, payload = await self.ctl.recv((FrameType.SESSION, FrameType.ERROR), within)
            if ftype == FrameType.SESSION and payload[:1] == b"\x04" and payload[1:2] in (
                b"\x01", b"\x05", b"\x06"
            ):  # fmt: skip
                continue
            return ftype, payload

    async def recv_app(self, within: float = 10.0) -> dict[str, Any]:
        _, _, payload = await self.ctl.recv((FrameType.SESSION,), within)
        pt = self.noise.receive(payload)
        assert pt is not None
        msg: dict[str, Any] = json.loads(pt)
        self.messages.append(msg)
        if msg["t"] == "state":
            self.state.update(msg["s"])
        return msg

    async def send_app(self, msg: dict[str, Any]) -> None:
        await self.ctl.send(
            FrameType.SESSION, self.device_id, self.noise.encrypt(json.dumps(msg).encode())
        )

    async def wait_for(self, t: str, within: float = 10.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            msg = await self.recv_app(max(0.05, deadline - time.monotonic()))
            if msg["t"] == t and all(msg.get(k) == v for k, v in fields.items()):
                return msg

    async def command(
        self, key: str, action: str, brightness: int | None = None, cid: int | None = None
    ) -> dict[str, Any]:
        if cid is None:
            cid = self.next_id
            self.next_id += 1
        msg: dict[str, Any] = {"t": "command", "id": cid, "key": key, "action": action}
        if brightness is not None:
            msg["brightness"] = brightness
        await self.send_app(msg)
        return await self.wait_for("result", id=cid)


def provision(state: Path, code: str = "20231187", iterations: int = 1000) -> dict[str, Any]:
    """Run the provisioning tool as a user would (its CLI, JSON output)."""
    proc = subprocess.run(
        [sys.executable, "-m", "tools.provision", str(state), "--code", code,
         "--iterations", str(iterations), "--json", "--no-label"],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]
