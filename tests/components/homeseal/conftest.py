"""Fixtures for the HomeSeal integration tests.

Custom integrations are enabled for every test, and HA's blocking-I/O detector is
switched on (including the checks HA skips under pytest) so a blocking call in the
event loop fails the test.

The relay is the real `python -m relay_server` process serving plain HTTP (as behind
a production TLS proxy) so that the firmware on the MicroPython unix port, which has
no `ssl`, reaches it with ws://; Home Assistant reaches it through a TLS-terminating
proxy process (tls_proxy.py) with a test CA, and must verify it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from homeassistant import block_async_io

from tests.support import FIRMWARE, ROOT, micropython_env, micropython_path

HERE = Path(__file__).resolve().parent
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load custom_components/homeseal in every test."""


@pytest.fixture(autouse=True)
def detect_blocking_io(caplog: pytest.LogCaptureFixture) -> Generator[None]:
    """Fail the test if the integration does blocking I/O in the event loop."""
    in_tests = block_async_io._IN_TESTS
    block_async_io._IN_TESTS = False  # also check open(), SSL loading, listdir, ...
    try:
        block_async_io.enable()
    finally:
        block_async_io._IN_TESTS = in_tests
    try:
        yield
    finally:
        for call in block_async_io._BLOCKED_CALLS.calls:
            setattr(call.object, call.function, call.original_func)
        block_async_io._BLOCKED_CALLS.calls.clear()
    blocking = [
        r.getMessage()
        for r in caplog.get_records("call")
        if r.levelno >= logging.WARNING and "blocking call" in r.getMessage()
    ]
    assert not blocking, blocking


# ---- TLS material -----------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: str
    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the server certificate (DER), hex


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls(directory: Path, common_name: str = "HomeSeal test CA") -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress  # noqa: PLC0415

    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
        cert=cert_path,
        key=key_path,
        fingerprint=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


# ---- the relay process --------------------------------------------------------------


def run_in_thread(fn: Callable[[], object]) -> None:
    """Run blocking test plumbing (process start/stop) off the event loop's thread."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=target, name="homeseal-test-plumbing")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def free_port() -> int:
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"nothing listening on {port}")


@dataclass
class RelayProcess:
    """A running relay and the TLS proxy in front of it."""

    directory: Path
    tls: TlsFiles
    port: int = 0
    proxy_port: int = 0
    relay: subprocess.Popen[bytes] | None = None
    proxy: subprocess.Popen[bytes] | None = None
    uses: int = 0
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """What Home Assistant uses (through the TLS proxy)."""
        return f"https://127.0.0.1:{self.proxy_port}"

    @property
    def device_url(self) -> str:
        """What the firmware uses (plain, end-to-end encryption protects content)."""
        return f"ws://127.0.0.1:{self.port}/ws/device"

    def start(self) -> None:
        with _sockets():
            if not self.port:
                self.port = free_port()
            self.relay = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "relay_server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--db",
                    str(self.directory / "relay.sqlite3"),
                    "--key-file",
                    str(self.directory / "relay.key"),
                    "--behind-proxy",
                    "--log-level",
                    "WARNING",
                    *self.extra_args,
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=open(self.directory / "relay.log", "ab"),  # noqa: SIM115
            )
            wait_port(self.port, self.relay)
            if self.proxy is None:
                self.proxy, self.proxy_port = self.start_proxy()

    def start_proxy(self) -> tuple[subprocess.Popen[bytes], int]:
        """A TLS proxy process in front of the relay; returns it and its port."""
        proxy = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "tls_proxy.py"),
                str(self.tls.cert),
                str(self.tls.key),
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proxy.stdout is not None
        line = proxy.stdout.readline().decode()
        assert line.startswith("PORT "), line
        return proxy, int(line.split()[1])

    def stop_relay(self) -> None:
        if self.relay is not None:
            self.relay.terminate()
            try:
                self.relay.wait(10)
            except subprocess.TimeoutExpired:
                self.relay.kill()
                self.relay.wait()
            self.relay = None

    def restart(self) -> None:
        self.stop_relay()
        self.start()

    def stop(self) -> None:
        self.stop_relay()
        if self.proxy is not None:
            self.proxy.kill()
            self.proxy.wait()
            self.proxy = None


class _sockets:
    """Sockets are blocked by the HA test plugin; fixtures that start processes and
    wait for their ports need them briefly."""

    def __enter__(self) -> None:
        import pytest_socket  # noqa: PLC0415

        self._was = socket.socket is not pytest_socket._true_socket
        pytest_socket.enable_socket()

    def __exit__(self, *exc: object) -> None:
        import pytest_socket  # noqa: PLC0415

        if self._was:
            pytest_socket.disable_socket(allow_unix_socket=True)


@pytest.fixture(scope="module")
def relay_process(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[RelayProcess]:
    """One relay per test module: its per-address registration limit (10) is per process."""
    relay = RelayProcess(tmp_path_factory.mktemp("relay"), tls_files)
    relay.start()
    yield relay
    relay.stop()


# The relay's login/registration limits are per process and in memory (10 registrations
# per address, then one a minute): restart it (same port, database and key) every few
# tests so each test starts with a fresh budget.
TESTS_PER_RELAY_RUN = 3


@pytest.fixture
def relay(relay_process: RelayProcess, socket_enabled: None) -> RelayProcess:
    """The module's relay, with sockets to 127.0.0.1 allowed for the test."""
    if relay_process.uses >= TESTS_PER_RELAY_RUN:
        # In a thread: the blocking-I/O detector watches the loop's thread.
        run_in_thread(relay_process.restart)
        relay_process.uses = 0
    relay_process.uses += 1
    return relay_process


# ---- simulated devices: the real firmware on the MicroPython unix port -------------------

DEVICE_ENTITIES: list[dict[str, object]] = [
    {"key": "relay1", "kind": "switch", "name": "Relay", "pin": "2"},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": "3"},
    {
        "key": "temp",
        "kind": "sensor",
        "name": "Temperature",
        "source": "internal_temp",
        "device_class": "temperature",
        "unit": "°C",
        "state_class": "measurement",
        "interval": 1,
    },
    {"key": "door", "kind": "binary_sensor", "name": "Door", "pin": "4", "device_class": "door"},
    {"key": "bell", "kind": "button", "name": "Bell", "pin": "5", "pulse_ms": 20},
]


@dataclass
class SimDevice:
    """One firmware process (simulated pins) with its own state directory."""

    directory: Path
    relay: RelayProcess
    name: str = "Test board"
    device_id: str = ""
    setup_code: str = ""
    qr_payload: str = ""
    control_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def log(self) -> Path:
        return self.directory / "device.log"

    def provision(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.provision",
                str(self.state_dir),
                "--iterations",
                "1000",
                "--no-label",
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        info = json.loads(out.stdout)
        self.device_id = info["device_id"]
        self.setup_code = info["setup_code"].replace("-", "")
        self.qr_payload = info["qr_payload"]
        config = {
            "name": self.name,
            "model": "sim-1",
            "relay": {"url": self.relay.device_url},
            "pairing_button": {"pin": "0", "long_press_ms": 100, "factory_reset_ms": 200},
            "state_interval": 5,
            "entities": DEVICE_ENTITIES,
        }
        (self.directory / "config.json").write_text(json.dumps(config))

    def start(self, wait_connected: bool = True, window_seconds: int | None = None) -> None:
        with _sockets():
            self.control_port = free_port()
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [
                str(micropython_path()),
                "-X",
                "heapsize=8m",
                "main.py",
                "--config",
                str(self.directory / "config.json"),
                "--state",
                str(self.state_dir),
                "--control",
                f"127.0.0.1:{self.control_port}",
                *(["--window-seconds", str(window_seconds)] if window_seconds is not None else []),
            ],
            cwd=FIRMWARE,
            env=micropython_env(),
            stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        if wait_connected:
            self.wait_log("relay connected", offset)

    def wait_log(self, text: str, offset: int = 0, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace")[offset:]:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"device exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"device never logged {text!r}: {self.log.read_text()[-2000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    async def control(self, request: dict[str, object]) -> dict[str, object]:
        """One request on the device's pin control socket."""
        import asyncio  # noqa: PLC0415

        reader, writer = await asyncio.open_connection("127.0.0.1", self.control_port)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 10)
        finally:
            writer.close()
            await writer.wait_closed()
        answer: dict[str, object] = json.loads(line)
        assert answer.get("ok") is True, answer
        return answer

    async def pins(self) -> dict[str, object]:
        answer = await self.control({"op": "get"})
        return answer  # {"pins": {...}, "pulses": {...}}


@pytest.fixture
def make_device(relay: RelayProcess, tmp_path: Path) -> Iterator[Callable[..., SimDevice]]:
    """Start simulated devices (real firmware) connected to the test's relay."""
    devices: list[SimDevice] = []

    def make(
        name: str = "Test board", start: bool = True, window_seconds: int | None = None
    ) -> SimDevice:
        device = SimDevice(tmp_path / f"device{len(devices)}", relay, name=name)
        devices.append(device)
        run_in_thread(device.provision)
        if start:
            run_in_thread(lambda: device.start(window_seconds=window_seconds))
        return device

    yield make
    for device in devices:
        run_in_thread(device.stop)
