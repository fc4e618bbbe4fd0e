"""The firmware's wss:// path, executed: the unix port is built with TLS (scripts/setup:
the `tls` module on the system mbedTLS), and the device reaches the real relay serving
TLS itself (testbed.relay with a certificate from testbed.tls).

- With the right CA the device connects over wss:// and a controller opens a session
  with it and drives a pin.
- A wrong CA, a certificate for another host name, an expired certificate (each from a
  TLS front, testbed.tls_pipe, before the relay) and a relay key that does not match
  the pin (relay.relay_key) are each refused: one log line per attempt naming the
  cause, retried with the growing backoff (§2.1), never "relay connected".
- Plain ws:// still works where configured.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket  # type: ignore[import-untyped]

from testbed.accounts import new_account
from testbed.endpoints import Controller
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess
from testbed.tls import TlsFiles, make_tls
from testbed.tls_pipe import TlsPipe

pytestmark = pytest.mark.micropython

CODE = "31415926"
HOST = "localhost"  # the name the certificates carry and the device connects to


@pytest.fixture(scope="module")
def tls_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """The relay serving TLS itself, with a certificate for localhost."""
    pytest_socket.enable_socket()
    workdir = tmp_path_factory.mktemp("tls-relay")
    relay = RelayProcess(workdir, serve=make_tls(workdir / "tls"), url_host=HOST)
    with relay:
        yield relay


def _files(relay: RelayProcess) -> TlsFiles:
    assert isinstance(relay.serve, TlsFiles)
    return relay.serve


def wss_device(
    make_device: Callable[..., DeviceProcess], url: str, ca: Path, **relay: Any
) -> DeviceProcess:
    """A provisioned device whose relay.url is `url`, trusting `ca` (copied into its
    work directory, as the CA file is on a board's file system)."""
    dev = make_device(url)
    shutil.copy(ca, dev.workdir / "relay-ca.pem")
    dev.write_config(relay={"url": url, "ca": "relay-ca.pem", **relay})
    provision(dev.state, CODE)
    return dev


@pytest.fixture
def front(
    tmp_path: Path, tls_relay: RelayProcess, socket_enabled: None
) -> Iterator[Callable[..., tuple[str, Path]]]:
    """A TLS front before the relay with a certificate of the test's making (make_tls's
    options): its device URL (by host name) and the CA that signed the certificate."""
    pipes: list[TlsPipe] = []

    def start(**cert: Any) -> tuple[str, Path]:
        directory = tmp_path / f"front{len(pipes)}"
        tls = make_tls(directory / "tls", **cert)
        pipe = TlsPipe(
            directory / "pipe.log",
            tls_relay.port,
            upstream_host=HOST,
            server_tls=tls,
            upstream_ca=_files(tls_relay).ca,
        )
        pipes.append(pipe)
        pipe.start()
        return f"wss://{HOST}:{pipe.port}/ws/device", tls.ca

    yield start
    for pipe in pipes:
        pipe.stop()


async def test_wss_session_with_the_right_ca(
    make_device: Callable[..., DeviceProcess], tls_relay: RelayProcess
) -> None:
    context = tls_relay.ssl_context()
    dev = wss_device(
        make_device, tls_relay.device_url, _files(tls_relay).ca, relay_key=tls_relay.relay_key()
    )
    assert dev.relay_url.startswith(f"wss://{HOST}:")
    dev.start()
    await dev.wait_log_async("relay connected claimed=0")
    _, token = await new_account(tls_relay.base, ssl_context=context)
    ctl = await Controller(tls_relay.base, token, ssl_context=context).connect()
    try:
        device_pub = await ctl.pair(dev.device_id, CODE)
        await dev.wait_log_async("claimed by controller")
        session = await ctl.open_session(dev.device_id, device_pub)
        assert session.describe is not None
        assert session.state["relay1"] is False
        assert await session.command("relay1", "turn_on") == {"t": "result", "id": 1, "ok": True}
        assert (await dev.pins())["5"] == 1
    finally:
        await ctl.close()
    assert "TLS" not in dev.output()


def _sockets(dev: DeviceProcess) -> int:
    """How many sockets the device's process holds."""
    count = 0
    for fd in Path(f"/proc/{dev.pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            count += fd.readlink().name.startswith("socket:")
    return count


DAY = datetime.timedelta(days=1)
# The reason each TLS case must log, in mbedTLS's words (a name that matches neither the
# certificate's subject alternative names nor its common name is its "CN mismatch").
REFUSALS = {
    "wrong CA": "The certificate is not correctly signed by the trusted CA",
    "wrong host name": "The certificate Common Name (CN) does not match with the expected CN",
    "expired certificate": "The certificate validity has expired",
    "relay key pin": None,  # TLS is fine; the relay authentication is refused
}
PIN_REFUSED = "relay auth refused: relay key does not match relay.relay_key"
RETRY = re.compile(r"relay reconnect in (\d+) ms \(close 1006, at most (\d+) ms\)")


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_refused_with_one_line_per_attempt_and_backoff(
    case: str,
    make_device: Callable[..., DeviceProcess],
    tls_relay: RelayProcess,
    front: Callable[..., tuple[str, Path]],
    tmp_path: Path,
) -> None:
    url, ca = tls_relay.device_url, _files(tls_relay).ca
    relay_key = {"relay_key": tls_relay.relay_key()}
    now = datetime.datetime.now(datetime.UTC)
    if case == "wrong CA":
        ca = make_tls(tmp_path / "other", ca_name="Another CA").ca
    elif case == "wrong host name":
        url, ca = front(names=("relay.example.org",))
    elif case == "expired certificate":
        url, ca = front(not_before=now - 90 * DAY, not_after=now - DAY)
    else:
        relay_key = {"relay_key": "ab" * 32}
    dev = wss_device(make_device, url, ca, **relay_key)
    dev.start()
    # Three attempts: the backoff's limit doubles from 1 s (§2.1), so this takes < 8 s.
    await dev.wait_log_async("relay reconnect in", within=30, count=3)
    sockets = _sockets(dev)
    out = dev.output()
    relay_lines = [
        line.removeprefix("homeseal: ")
        for line in out.splitlines()
        if line.startswith("homeseal: relay")
    ][:6]
    # Each attempt: exactly one line naming the cause, then the retry; nothing else
    # (no traceback, no "relay link error").
    reason = REFUSALS[case]
    cause = PIN_REFUSED
    if reason is not None:
        cause = f"relay connect failed: TLS certificate refused: {reason} ({url.split('/')[2]})"
    assert relay_lines[0::2] == [cause] * 3, out
    retries = [RETRY.fullmatch(line) for line in relay_lines[1::2]]
    delays = [(int(m[1]), int(m[2])) for m in retries if m is not None]
    assert [limit for _, limit in delays] == [1000, 2000, 4000], out
    assert all(delay <= limit for delay, limit in delays), out
    assert "Traceback" not in out
    assert "relay connected" not in out
    assert dev.alive
    # The failed TLS sockets were closed (mbedTLS lets go of the TCP socket under a
    # failed handshake): the control socket and at most the attempt under way remain.
    assert sockets <= 2, sockets


async def test_plain_ws_still_works(
    make_device: Callable[..., DeviceProcess], relay: RelayProcess
) -> None:
    dev = make_device()
    assert dev.relay_url.startswith("ws://")
    dev.start()
    await dev.wait_log_async("relay connected claimed=0")
