"""Real processes for the demo and the end-to-end tests.

Each class runs one real part as its own process, as a user would run it:

- `Relay`: `python -m relay_server` with SQLite and a self-signed TLS
  certificate for localhost, generated here with `cryptography`;
- `Bridge`: plain TCP to TLS (bridge.py), the simulated device's way to the
  relay, since the MicroPython unix port has no `ssl`;
- `SimDevice`: firmware/main.py on the MicroPython unix port with simulated
  pins, provisioned with tools/provision.py;
- `HomeAssistant`: `hass -c <dir>` with the integration linked into
  custom_components, onboarded and driven only through its public REST and
  websocket APIs.

Everything here is synchronous (subprocess, `httpx`, one short-lived
websocket per call), so pytest fixtures can share the processes across a module
without an event loop of their own.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent.parent
FIRMWARE = ROOT / "firmware"
CACHE = Path(
    os.environ.get("HOMESEAL_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "homeseal"
)
MICROPYTHON = Path(os.environ.get("HOMESEAL_MICROPYTHON") or CACHE / "bin" / "micropython")
VENV_BIN = Path(sys.executable).parent
DOMAIN = "homeseal"

# The demo device: one entity of every kind (DESIGN "Device model").
SWITCH_PIN, LIGHT_PIN, TEMP_PIN, DOOR_PIN, BUTTON_PIN = 5, 6, 26, 4, 7
DEVICE_ENTITIES: list[dict[str, Any]] = [
    {"key": "relay", "kind": "switch", "name": "Relay", "pin": SWITCH_PIN},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": LIGHT_PIN},
    {
        "key": "temperature",
        "kind": "sensor",
        "name": "Temperature",
        "pin": TEMP_PIN,
        # The simulated ADC reads 0..65535: hundredths of a degree.
        "scale": 0.01,
        "precision": 1,
        "unit": "°C",
        "device_class": "temperature",
        "state_class": "measurement",
        "interval": 2,
    },
    {"key": "door", "kind": "binary_sensor", "name": "Door", "pin": DOOR_PIN,
     "device_class": "door", "debounce_ms": 20},
    {"key": "bell", "kind": "button", "name": "Bell", "pin": BUTTON_PIN, "pulse_ms": 200},
]  # fmt: skip


class HarnessError(Exception):
    """A part did not start or did not behave; the message says which and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port` (TIME_WAIT leftovers do not count:
    the servers here bind with SO_REUSEADDR too)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def wait_until[T](
    predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll `predicate` until it returns something truthy; HarnessError on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except (httpx.HTTPError, OSError, HarnessError) as err:
            last_error, value = err, None
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error})" if last_error else ""
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# ---------------------------------------------------------------- TLS


def make_self_signed_cert(directory: Path, days: int = 365) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (cert.pem, key.pem).

    It is its own trust anchor: the same PEM is what Home Assistant is told to
    trust (the integration's custom-CA field) and what the bridge verifies with.
    It carries the extensions Python's strict X.509 verification asks for.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


# ---------------------------------------------------------------- processes


class Process:
    """One child process with its output appended to a log file."""

    name = "process"

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def _spawn(self, cmd: list[str], **kwargs: Any) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            # A session of its own: Ctrl-C in the demo's terminal reaches only the
            # demo, which then stops the children in order.
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What the current run wrote so far."""
        try:
            with self.log.open("rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"last output ({self.log}):\n{self.output()[-3000:]}"
            )

    def freeze(self) -> None:
        """SIGSTOP: the process and its sockets hang, as on a network partition."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL: its connections are reset, nothing is flushed."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Relay(Process):
    """The relay, TLS on 127.0.0.1:`port`, reached as https://localhost:`port`."""

    name = "relay"

    def __init__(self, workdir: Path, port: int, cert: Path, key: Path) -> None:
        super().__init__(workdir / "relay.log")
        self.workdir = workdir
        self.port = port
        self.cert = cert
        self.key = key

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            [
                sys.executable,
                "-m",
                "relay_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--db",
                str(self.workdir / "relay.sqlite3"),
                "--key-file",
                str(self.workdir / "relay.key"),
                "--tls-cert",
                str(self.cert),
                "--tls-key",
                str(self.key),
                "--log-level",
                "INFO",
            ],
            cwd=ROOT,
        )

        def healthy() -> bool:
            self.check_alive()
            with httpx.Client(verify=self.ssl_context(), timeout=2) as http:
                return http.get(f"{self.url}/healthz").status_code == 200

        wait_until(healthy, timeout, "the relay to answer /healthz over TLS")

    def relay_key(self) -> str:
        with httpx.Client(verify=self.ssl_context(), timeout=5) as http:
            r = http.get(f"{self.url}/api/v1/relay")
        r.raise_for_status()
        return str(r.json()["relay_key"])

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert)


class Bridge(Process):
    """Plain TCP on 127.0.0.1:`port` → TLS to the relay (see bridge.py)."""

    name = "device bridge"

    def __init__(self, workdir: Path, port: int, relay: Relay) -> None:
        super().__init__(workdir / "bridge.log")
        self.port = port
        self.relay = relay

    @property
    def device_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/device"

    def start(self, timeout: float = 15) -> None:
        self._spawn(
            [
                sys.executable,
                "-m",
                "tools.demo.bridge",
                "--target",
                f"localhost:{self.relay.port}",
                "--ca",
                str(self.relay.cert),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
        )

        def listening() -> bool:
            self.check_alive()
            return f"PORT {self.port}" in self.output()

        wait_until(listening, timeout, "the device bridge to listen")


@dataclass
class Provisioned:
    device_id: str
    setup_code: str
    qr_payload: str
    label_png: str
    label_svg: str


class SimDevice(Process):
    """firmware/main.py on the MicroPython unix port with simulated pins."""

    name = "simulated device"

    def __init__(
        self, workdir: Path, relay_url: str, control_port: int, name: str = "Demo device"
    ) -> None:
        super().__init__(workdir / "device.log")
        self.workdir = workdir
        self.state = workdir / "state"
        self.config = workdir / "config.json"
        self.relay_url = relay_url
        self.control_port = control_port
        self.device_name = name

    def write_config(self, relay_key: str | None = None) -> None:
        relay: dict[str, Any] = {"url": self.relay_url}
        if relay_key:
            relay["relay_key"] = relay_key  # pin the relay's static key
        cfg = {
            "name": self.device_name,
            "model": "homeseal-sim",
            "relay": relay,
            "entities": DEVICE_ENTITIES,
            "state_interval": 60,
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps(cfg, indent=2))

    def provision(self, iterations: int = 1000) -> Provisioned:
        """tools/provision.py, as a user runs it; writes the label beside the state."""
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.provision",
                str(self.state),
                "--iterations",
                str(iterations),
                "--label",
                str(self.workdir / "label"),
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise HarnessError(f"provisioning failed: {proc.stderr.strip()}")
        out = json.loads(proc.stdout)
        (self.workdir / "provisioned.json").write_text(json.dumps(out, indent=2))
        return self.provisioned()  # type: ignore[return-value]

    def provisioned(self) -> Provisioned | None:
        path = self.workdir / "provisioned.json"
        if not path.exists():
            return None
        out = json.loads(path.read_text())
        return Provisioned(
            out["device_id"], out["setup_code"], out["qr_payload"],
            out.get("label_png", ""), out.get("label_svg", ""),
        )  # fmt: skip

    def start(self, timeout: float = 30) -> None:
        if not MICROPYTHON.is_file():
            raise HarnessError(
                f"MicroPython unix port not found at {MICROPYTHON}: run scripts/setup"
            )
        self._spawn(
            [
                str(MICROPYTHON),
                "-X",
                "heapsize=1m",
                str(FIRMWARE / "main.py"),
                "--config",
                str(self.config),
                "--state",
                str(self.state),
                "--control",
                f"127.0.0.1:{self.control_port}",
            ],
            cwd=self.workdir,
            env={**os.environ, "MICROPYPATH": f".frozen:{FIRMWARE}"},
        )

        def ready() -> bool:
            self.check_alive()
            return "control socket" in self.output()

        wait_until(ready, timeout, "the simulated device to start")

    def wait_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            self.check_alive()
            return re.search(pattern, self.output())

        return wait_until(found, timeout, f"device log {pattern!r}")

    # -- the simulated pins (firmware/homeseal/hw_sim.py's control socket)

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as s:
            s.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise HarnessError("device control socket closed")
                buf += chunk
        return json.loads(buf.split(b"\n", 1)[0])  # type: ignore[no-any-return]

    def pins(self) -> dict[str, Any]:
        return self.control({"op": "get"})["pins"]  # type: ignore[no-any-return]

    def pulses(self) -> dict[str, int]:
        return self.control({"op": "get"})["pulses"]  # type: ignore[no-any-return]

    def set_pin(self, pin: int | str, value: float) -> None:
        resp = self.control({"op": "set", "pin": str(pin), "value": value})
        if resp != {"ok": True}:
            raise HarnessError(f"setting pin {pin} to {value}: {resp}")

    def set_door(self, is_open: bool) -> None:
        # A door contact to ground with pull-up: closed pulls the input low.
        self.set_pin(DOOR_PIN, 1 if is_open else 0)

    def set_temperature(self, celsius: float) -> None:
        self.set_pin(TEMP_PIN, round(celsius * 100))


# ---------------------------------------------------------------- Home Assistant


class FlowError(HarnessError):
    """A config flow ended somewhere other than where the caller expected."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(f"{message}: {json.dumps(result)[:1500]}")
        self.result = result


class ServiceError(HarnessError):
    """A service call answered with an error: an HTTP status, or the websocket's error
    object (code, message, translation_key)."""

    def __init__(self, status: int, text: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(f"service call failed ({status}): {text[:500]}")
        self.status = status
        self.text = text
        self.error = error or {}


BASE_INTEGRATIONS = ["http", "api", "config", "onboarding", "auth", "websocket_api", "automation"]


class HomeAssistant(Process):
    """A real `hass -c <config_dir>`, used only through its REST and websocket APIs."""

    name = "Home Assistant"

    def __init__(self, config_dir: Path, port: int, *, frontend: bool = False) -> None:
        super().__init__(config_dir / "hass.out")
        self.config_dir = config_dir
        self.port = port
        self.frontend = frontend
        self.token: str | None = None
        self._http = httpx.Client(timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- configuration and process

    def write_config(self) -> None:
        """configuration.yaml naming only what is needed (default_config pulls in
        integrations that need network or libraries this machine lacks)."""
        d = self.config_dir
        d.mkdir(parents=True, exist_ok=True)
        integrations = [*BASE_INTEGRATIONS, *(["frontend"] if self.frontend else [])]
        lines = [
            "homeassistant:",
            "  name: HomeSeal demo",
            "  unit_system: metric",
            "  time_zone: UTC",
            "  latitude: 52.37",
            "  longitude: 4.89",
            "  elevation: 0",
            "  currency: EUR",
            "  country: NL",
            "  language: en",
            "http:",
            "  server_host: 127.0.0.1",
            f"  server_port: {self.port}",
            *(f"{i}:" for i in integrations if i not in ("http", "automation")),
            "automation: !include automations.yaml",
            "logger:",
            "  default: warning",
            "  logs:",
            f"    custom_components.homeseal: {os.environ.get('HOMESEAL_HA_LOG_LEVEL', 'info')}",
            "",
        ]
        (d / "configuration.yaml").write_text("\n".join(lines))
        automations = d / "automations.yaml"
        if not automations.exists():
            automations.write_text("[]\n")
        # The integration as a user installs it by hand: custom_components/homeseal.
        cc = d / "custom_components"
        cc.mkdir(exist_ok=True)
        link = cc / DOMAIN
        if not link.exists():
            link.symlink_to(ROOT / "custom_components" / DOMAIN, target_is_directory=True)

    def start(self, timeout: float = 240) -> None:
        """Start hass and wait until its HTTP API answers and it is running."""
        hass = VENV_BIN / "hass"
        self._spawn(
            [str(hass), "-c", str(self.config_dir), "--skip-pip", "--log-no-color"],
            cwd=self.config_dir,
        )
        self.wait_running(timeout)

    def wait_running(self, timeout: float = 240) -> None:
        """Wait for the HTTP API, then (with a token) for the core to be RUNNING.

        Without a token only the onboarding API can tell that HA is up; once
        onboarding is complete HA no longer serves it (404)."""
        if self.token is None:

            def up() -> bool:
                self.check_alive()
                r = self._http.get(f"{self.url}/api/onboarding", timeout=5)
                return bool(r.status_code == 200)

            wait_until(up, timeout, f"Home Assistant's onboarding API on {self.url}", 0.5)
            return

        def running() -> bool:
            self.check_alive()
            return bool(self.rest("GET", "/api/config").get("state") == "RUNNING")

        wait_until(running, timeout, f"Home Assistant on {self.url} to be running", 0.5)

    def check_alive(self) -> None:
        super().check_alive()
        # Recovery mode keeps hass up but never loads our integrations: fail now,
        # not when a start timeout of minutes runs out.
        if "Activating recovery mode" in self.output():
            raise HarnessError(
                f"{self.name} fell into recovery mode (is home-assistant-frontend "
                f"installed?); see {self.config_dir / 'home-assistant.log'}:\n"
                f"{self.output()[-3000:]}"
            )

    def stop(self, timeout: float = 60) -> None:
        super().stop(timeout)

    # -- onboarding (HA's own API, as the frontend's onboarding pages use it)

    def onboard(self, username: str, password: str, *, all_steps: bool = False) -> str:
        """Create the owner account; returns a long-lived access token.

        `all_steps` also finishes the core-config, analytics and integration
        steps, so that the web UI goes straight to the dashboard.
        """
        client_id = f"{self.url}/"
        r = self._http.post(
            f"{self.url}/api/onboarding/users",
            json={
                "client_id": client_id,
                "name": "Demo Owner",
                "username": username,
                "password": password,
                "language": "en",
            },
            timeout=60,
        )
        if r.status_code != 200:
            raise HarnessError(f"onboarding user step: HTTP {r.status_code} {r.text[:300]}")
        tokens = self._token_exchange(client_id, r.json()["auth_code"])
        self.token = tokens["access_token"]
        self.wait_running()
        if all_steps:
            for step in ("core_config", "analytics"):
                body: dict[str, Any] | None = {"preferences": {}} if step == "analytics" else None
                self.rest("POST", f"/api/onboarding/{step}", body)
            self.rest(
                "POST",
                "/api/onboarding/integration",
                {"client_id": client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
            )
        result = self.ws(
            {
                "type": "auth/long_lived_access_token",
                "client_name": "homeseal-e2e",
                "lifespan": 3650,
            }
        )
        self.token = str(result)
        return self.token

    def _token_exchange(self, client_id: str, code: str) -> dict[str, Any]:
        r = self._http.post(
            f"{self.url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
            timeout=30,
        )
        if r.status_code != 200:
            raise HarnessError(f"token exchange: HTTP {r.status_code} {r.text[:300]}")
        return r.json()  # type: ignore[no-any-return]

    def login(self, username: str, password: str) -> int:
        """HA's login flow with a username and password (what the login page does);
        returns the HTTP status of the credentials step's token exchange."""
        client_id = f"{self.url}/"
        r = self._http.post(
            f"{self.url}/auth/login_flow",
            json={
                "client_id": client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.url}/?auth_callback=1",
            },
            timeout=30,
        )
        r.raise_for_status()
        flow = r.json()
        r = self._http.post(
            f"{self.url}/auth/login_flow/{flow['flow_id']}",
            json={"client_id": client_id, "username": username, "password": password},
            timeout=30,
        )
        r.raise_for_status()
        result = r.json()
        if result.get("type") != "create_entry":
            return 401
        self._token_exchange(client_id, result["result"])
        return 200

    # -- REST and websocket

    def rest(
        self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = (200, 201)
    ) -> Any:
        r = self._http.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        if r.status_code not in expect:
            raise HarnessError(f"{method} {path}: HTTP {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def ws(self, *commands: dict[str, Any]) -> Any:
        """Send websocket commands in order; returns the last one's result."""
        # A private loop, never made the thread's current one: asyncio.run() would
        # reset the current loop, which pytest's and HA's fixtures rely on.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self._ws(list(commands)))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _ws(self, commands: list[dict[str, Any]]) -> Any:
        result: Any = None
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"{self.url}/api/websocket", timeout=aiohttp.ClientWSTimeout(30)
            ) as ws,
        ):
            await ws.receive_json(timeout=30)  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            msg = await ws.receive_json(timeout=30)
            if msg.get("type") != "auth_ok":
                raise HarnessError(f"websocket auth failed: {msg}")
            for i, command in enumerate(commands, start=1):
                await ws.send_json({"id": i, **command})
                while True:
                    msg = await ws.receive_json(timeout=60)
                    if msg.get("id") == i and msg.get("type") == "result":
                        break
                if not msg.get("success"):
                    error = msg.get("error") or {}
                    if command["type"] == "call_service":
                        raise ServiceError(0, str(error.get("message")), error)
                    raise HarnessError(f"websocket {command['type']}: {error}")
                result = msg.get("result")
        return result

    # -- states and services

    def states(self) -> list[dict[str, Any]]:
        return self.rest("GET", "/api/states")  # type: ignore[no-any-return]

    def state(self, entity_id: str) -> dict[str, Any] | None:
        r = self._http.get(
            f"{self.url}/api/states/{entity_id}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def wait_state(
        self,
        entity_id: str,
        predicate: Callable[[dict[str, Any]], bool] | str,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Wait until the entity's state object satisfies `predicate` (or equals a state)."""
        check = (lambda s: s["state"] == predicate) if isinstance(predicate, str) else predicate
        seen: list[Any] = []

        def ok() -> dict[str, Any] | None:
            s = self.state(entity_id)
            seen[:] = [None if s is None else (s["state"], s.get("attributes"))]
            return s if s is not None and check(s) else None

        try:
            return wait_until(ok, timeout, f"{entity_id}", interval=0.25)
        except HarnessError as err:
            raise HarnessError(f"{err}; last seen: {seen}") from None

    def call(self, domain: str, service: str, data: dict[str, Any]) -> Any:
        r = self._http.post(
            f"{self.url}/api/services/{domain}/{service}",
            json=data,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        if r.status_code != 200:
            raise ServiceError(r.status_code, r.text)
        return r.json()

    def call_ws(self, domain: str, service: str, data: dict[str, Any]) -> Any:
        """A service call over the websocket API, as the web UI makes it: failures come
        back as ServiceError with HA's error object (translated message, key)."""
        return self.ws(
            {
                "type": "call_service",
                "domain": domain,
                "service": service,
                "service_data": data,
                "return_response": False,
            }
        )

    # -- config entries and flows

    def entries(self, domain: str = DOMAIN) -> list[dict[str, Any]]:
        return self.rest("GET", f"/api/config/config_entries/entry?domain={domain}")  # type: ignore[no-any-return]

    def entry(self, entry_id: str) -> dict[str, Any]:
        for e in self.entries():
            if e["entry_id"] == entry_id:
                return e
        raise HarnessError(f"no config entry {entry_id}")

    def wait_entry_state(self, entry_id: str, state: str = "loaded", timeout: float = 60) -> None:
        wait_until(
            lambda: self.entry(entry_id)["state"] == state,
            timeout,
            f"config entry {entry_id} to be {state}",
        )

    def reload_entry(self, entry_id: str) -> None:
        self.rest("POST", f"/api/config/config_entries/entry/{entry_id}/reload")

    def subentries(self, entry_id: str) -> list[dict[str, Any]]:
        return self.ws({"type": "config_entries/subentries/list", "entry_id": entry_id})  # type: ignore[no-any-return]

    def add_account(
        self,
        relay_url: str,
        username: str,
        password: str,
        *,
        ca_pem: str | None = None,
        create: bool = True,
    ) -> dict[str, Any]:
        """The integration's user step, as the "Add integration" dialog submits it.

        Returns the final flow result (type create_entry on success)."""
        flow = self.rest(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": DOMAIN, "show_advanced_options": False},
        )
        if flow.get("type") != "form" or flow.get("step_id") != "user":
            raise FlowError("the HomeSeal flow did not open on its user step", flow)
        user_input: dict[str, Any] = {
            "url": relay_url,
            "username": username,
            "password": password,
            "account_action": "create_account" if create else "sign_in",
        }
        if ca_pem:
            user_input["ca_pem"] = ca_pem
        return self.rest(  # type: ignore[no-any-return]
            "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", user_input
        )

    def pair_device(
        self, entry_id: str, user_input: dict[str, Any], timeout: float = 90
    ) -> dict[str, Any]:
        """The "Add device" subentry flow; returns the flow's last result.

        Pairing runs as a progress step: poll the flow until it leaves it. The
        flow manager advances by itself when the pairing task ends, so a
        finished flow answers 404 and its result is the new subentry.
        """
        base = "/api/config/config_entries/subentries/flow"
        flow = self.rest("POST", base, {"handler": [entry_id, "device"]})
        if flow.get("type") != "form":
            raise FlowError("the Add-device flow did not open with a form", flow)
        before = {s["subentry_id"] for s in self.subentries(entry_id)}
        result = self.rest("POST", f"{base}/{flow['flow_id']}", user_input)
        deadline = time.monotonic() + timeout
        while result.get("type") in ("progress", "progress_done"):
            if time.monotonic() > deadline:
                raise FlowError("pairing did not finish in time", result)
            time.sleep(0.5)
            r = self._http.get(
                f"{self.url}{base}/{flow['flow_id']}",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=30,
            )
            if r.status_code == 404:
                new = [s for s in self.subentries(entry_id) if s["subentry_id"] not in before]
                if not new:
                    raise FlowError("the pairing flow vanished without a new device", result)
                return {"type": "create_entry", "subentry": new[0]}
            r.raise_for_status()
            result = r.json()
        return result  # type: ignore[no-any-return]

    def entity_ids(self, device_id: str) -> dict[str, str]:
        """entity key on the device → entity_id, from the entity registry."""
        entries = self.ws({"type": "config/entity_registry/list"})
        prefix = f"{device_id}_"
        return {
            e["unique_id"][len(prefix) :]: e["entity_id"]
            for e in entries
            if e["platform"] == DOMAIN and e["unique_id"].startswith(prefix)
        }

    def create_automation(self, automation_id: str, config: dict[str, Any]) -> None:
        self.rest("POST", f"/api/config/automation/config/{automation_id}", config)


def random_password() -> str:
    return "hs-" + secrets.token_urlsafe(18)


# ---------------------------------------------------------------- the whole system


class System:
    """Relay + bridge + simulated device + Home Assistant, in one state directory.

    The first `up()` creates everything (certificate, relay account, HA owner,
    config entry, pairing); later ones reuse the state directory and only start
    the processes. What was created is recorded in `system.json` there.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        frontend: bool = False,
        ha_port: int | None = None,
        ha_user: str = "demo",
        ha_password: str = "homeseal-demo",
        say: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.dir = state_dir
        self.say = say
        self.state_file = state_dir / "system.json"
        self.info: dict[str, Any] = (
            json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        )
        info = self.info
        info.setdefault("ha_user", ha_user)
        info.setdefault("ha_password", ha_password)
        info.setdefault("relay_user", "demo")
        info.setdefault("relay_password", random_password())
        for name, preferred in (
            ("relay_port", None), ("bridge_port", None), ("control_port", None),
            ("ha_port", ha_port),
        ):  # fmt: skip
            if name not in info:
                port = preferred if preferred and not port_in_use(preferred) else free_port()
                info[name] = port
        self.timings: dict[str, float] = {}
        tls = state_dir / "tls"
        self.cert, self.key = tls / "cert.pem", tls / "key.pem"
        self.relay = Relay(state_dir / "relay", info["relay_port"], self.cert, self.key)
        self.bridge = Bridge(state_dir / "relay", info["bridge_port"], self.relay)
        self.device = SimDevice(state_dir / "device", self.bridge.device_url, info["control_port"])
        self.hass = HomeAssistant(state_dir / "homeassistant", info["ha_port"], frontend=frontend)
        self.hass.token = info.get("ha_token")

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.info, f, indent=2)

    @property
    def entry_id(self) -> str:
        return str(self.info["entry_id"])

    @property
    def device_id(self) -> str:
        return str(self.info["device_id"])

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        try:
            return fn()
        finally:
            self.timings[name] = time.monotonic() - t0

    def _check_ports(self) -> None:
        busy = [
            f"{name}={self.info[name]}"
            for name in ("relay_port", "bridge_port", "control_port", "ha_port")
            if port_in_use(self.info[name])
        ]
        if busy:
            raise HarnessError(
                f"ports recorded in {self.state_file} are in use ({', '.join(busy)}): "
                "is another demo running? Stop it, or remove the state directory."
            )

    def up(self) -> None:
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._check_ports()
        self.save()
        if not self.cert.exists():
            self.say("generating a self-signed TLS certificate for localhost")
            make_self_signed_cert(self.cert.parent)
        self.say(f"starting the relay on {self.relay.url}")
        self._timed("relay", self.relay.start)
        self._timed("bridge", self.bridge.start)
        self.device.write_config(self.relay.relay_key())
        if self.device.provisioned() is None:
            self.say("provisioning the simulated device (setup code, label)")
            self._timed("provision", self.device.provision)
        self.say("starting the simulated device on the MicroPython unix port")
        self._timed("device", self.device.start)
        self._timed("device_online", lambda: self.device.wait_log(r"relay connected", 60))
        # The simulated room: door closed (contact pulls the input low), 21.5 °C.
        self.device.set_door(False)
        self.device.set_temperature(21.5)
        self.hass.write_config()
        self.say(f"starting Home Assistant on {self.hass.url} (the first start takes longest)")
        self._timed("hass", lambda: self.hass.start(timeout=300))
        if self.hass.token is None:
            self.say("onboarding Home Assistant through its API")
            self.info["ha_token"] = self._timed(
                "onboard",
                lambda: self.hass.onboard(
                    self.info["ha_user"], self.info["ha_password"],
                    all_steps=self.hass.frontend,
                ),
            )  # fmt: skip
            self.save()
        self.hass.wait_running()
        if "entry_id" not in self.info:
            self.say("adding the relay account (config flow)")
            self._timed("add_account", self._add_account)
            self.save()
        self.hass.wait_entry_state(self.entry_id)
        if "device_id" not in self.info:
            self.say("pairing the device (Add device flow, SPAKE2+ with its setup code)")
            self._timed("pair", self._pair)
            self.save()
        self._timed("entities", self.wait_entities_available)
        self.timings["total"] = time.monotonic() - t0

    def _add_account(self) -> None:
        result = self.hass.add_account(
            self.relay.url,
            self.info["relay_user"],
            self.info["relay_password"],
            ca_pem=self.cert.read_text(),
            create=True,
        )
        if result.get("type") != "create_entry":
            raise FlowError("adding the relay account failed", result)
        self.info["entry_id"] = result["result"]["entry_id"]

    def _pair(self) -> None:
        prov = self.device.provisioned()
        assert prov is not None
        result = self.hass.pair_device(self.entry_id, {"setup_payload": prov.qr_payload})
        if result.get("type") != "create_entry":
            raise FlowError("pairing failed", result)
        self.info["device_id"] = prov.device_id

    def entity_ids(self) -> dict[str, str]:
        return self.hass.entity_ids(self.device_id)

    def wait_entities_available(self, timeout: float = 60) -> dict[str, str]:
        """Wait until every entity of the device exists and is not unavailable."""
        keys = {e["key"] for e in DEVICE_ENTITIES}

        def ready() -> dict[str, str] | None:
            ids = self.entity_ids()
            if set(ids) != keys:
                return None
            for entity_id in ids.values():
                s = self.hass.state(entity_id)
                if s is None or s["state"] == "unavailable":
                    return None
            return ids

        return wait_until(ready, timeout, "the device's entities to be available", interval=0.5)

    def down(self) -> None:
        """Stop everything, Home Assistant first (it saves its state on the way out)."""
        for part in (self.hass, self.device, self.bridge, self.relay):
            try:
                part.stop()
            except Exception as err:
                self.say(f"stopping {part.name}: {err}")
