"""The 2026-12 review's relay fixes in the real process (`python -m relay_server`): the
deadline of TLS connections that never send anything (R1), the metrics listener and
its options (I4), and the modes of the database files (L6). The in-process tests of
the same findings are in test_hardening.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_socket  # type: ignore[import-untyped]

from testbed.ports import free_port
from testbed.relay import RelayProcess, run_relay_expecting_failure
from testbed.tls import make_tls
from tests.support import ROOT

from .conftest import PASSWORD


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    yield session
    await session.close()


@pytest.fixture(scope="module")
def tls_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    pytest_socket.enable_socket()  # before the autouse fixture that does it per test
    workdir = tmp_path_factory.mktemp("tls-relay")
    relay = RelayProcess(workdir, serve=make_tls(workdir / "tls"), args=["--request-timeout", "1"])
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


def _closed_after(sock: socket.socket, limit: float = 15.0) -> float:
    """Seconds until the peer closes `sock` (EOF or reset), reading whatever comes."""
    sock.settimeout(limit)
    started = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except ConnectionError:
        pass
    except TimeoutError:
        raise AssertionError(f"still open after {limit} s") from None
    return time.monotonic() - started


def test_r1_silent_tls_connection_is_closed(tls_relay: RelayProcess) -> None:
    """A TCP connection that never starts its TLS handshake, and a TLS connection that
    never sends a request, are both closed within the request timeout (1 s here)."""
    with socket.create_connection(("127.0.0.1", tls_relay.port)) as raw:
        waited = _closed_after(raw)
    assert 0.5 < waited < 4.0, waited
    context = tls_relay.ssl_context()
    assert context is not None
    with (
        socket.create_connection(("127.0.0.1", tls_relay.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        started = time.monotonic()
        with contextlib.suppress(ssl.SSLError):  # an abort instead of close_notify
            _closed_after(tls)
        waited = time.monotonic() - started
    assert 0.5 < waited < 4.0, waited
    # The relay still serves TLS clients.
    with (
        socket.create_connection(("127.0.0.1", tls_relay.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
        assert tls.recv(64).startswith(b"HTTP/1.1 200")


def test_r1_options_are_validated(tmp_path: Path) -> None:
    for args in (
        ("--request-timeout", "0"),
        ("--max-unauthenticated", "0"),
        ("--max-unauthenticated-per-address", "0"),
        ("--hash-queue", "0"),
        ("--metrics-listen", "nonsense"),
    ):
        err = run_relay_expecting_failure(tmp_path, "--plain-http", *args)
        assert "homeseal-relay: error:" in err, (args, err)


async def test_i4_metrics_only_on_their_listener(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    relay = RelayProcess(tmp_path)
    relay.start()
    try:
        async with http.get(relay.base + "/metrics") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "not_found"
        assert relay.metrics_url.startswith(f"http://127.0.0.1:{relay.metrics_port}/")
        async with http.get(relay.metrics_url) as resp:
            assert resp.status == 200
            assert "homeseal_relay_connections" in await resp.text()
    finally:
        assert relay.stop() == 0
    assert f'"metrics": "127.0.0.1:{relay.metrics_port}"' in relay.output()


async def test_i4_metrics_listener_off_and_its_port_in_use(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    metrics_port = free_port()
    relay = RelayProcess(tmp_path, env={"HOMESEAL_RELAY_METRICS_LISTEN": "off"},
                         metrics_port=metrics_port)  # fmt: skip
    relay.start()
    try:
        with pytest.raises(aiohttp.ClientConnectorError):
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics"):
                pass
    finally:
        assert relay.stop() == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        err = run_relay_expecting_failure(
            tmp_path, "--plain-http", "--metrics-listen", f"127.0.0.1:{taken}"
        )
    assert f"cannot listen on 127.0.0.1:{taken}" in err


def test_i4_help_documents_the_new_options() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "relay_server", "--help"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    text = proc.stdout.replace("\n", " ")
    for option, variable in (
        ("--metrics-listen", "HOMESEAL_RELAY_METRICS_LISTEN"),
        ("--request-timeout", "HOMESEAL_RELAY_REQUEST_TIMEOUT"),
        ("--max-unauthenticated", "HOMESEAL_RELAY_MAX_UNAUTHENTICATED"),
        ("--max-unauthenticated-per-address", "HOMESEAL_RELAY_MAX_UNAUTHENTICATED_PER_ADDRESS"),
        ("--hash-queue", "HOMESEAL_RELAY_HASH_QUEUE"),
        ("--hash-jobs-per-address", "HOMESEAL_RELAY_HASH_JOBS_PER_ADDRESS"),
        ("--no-malloc-trim", "HOMESEAL_RELAY_NO_MALLOC_TRIM"),
    ):
        assert option in text, option
        assert variable in text, variable
    assert "127.0.0.1:9464" in text  # the metrics listener's default: loopback


async def test_l6_database_files_are_private(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    old = os.umask(0o022)  # the usual umask: files would be 0644 by default
    try:
        relay = RelayProcess(tmp_path)
        relay.start()
    finally:
        os.umask(old)
    try:
        async with http.post(
            relay.base + "/api/v1/accounts", json={"username": "private", "password": PASSWORD}
        ) as resp:
            assert resp.status == 201  # a write: the -wal file has content
        files = [relay.db, Path(f"{relay.db}-wal"), Path(f"{relay.db}-shm")]
        for path in files:
            assert path.exists(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    finally:
        assert relay.stop() == 0
    assert stat.S_IMODE(relay.db.stat().st_mode) == 0o600


async def test_l6_existing_database_is_tightened(tmp_path: Path) -> None:
    """A database a relay before the fix created 0644 is made 0600 when opened."""
    from relay_server.storage_sqlite import SqliteStorage  # noqa: PLC0415

    path = tmp_path / "old.sqlite3"
    storage = SqliteStorage(path)
    await storage.open()
    await storage.create_account("someone", "x", 0)
    await storage.close()
    path.chmod(0o644)
    storage = SqliteStorage(path)
    await storage.open()
    try:
        await storage.create_account("someone-else", "x", 0)
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    finally:
        await storage.close()
    await asyncio.sleep(0)
