"""Fixtures for the HomeSeal integration tests.

Custom integrations are enabled for every test, and HA's blocking-I/O detector is
switched on (including the checks HA skips under pytest) so a blocking call in the
event loop fails the test; so does any report of a deprecated or changed API that
HA logs against this integration (on either supported HA version).

The relay is the real `python -m relay_server` process serving plain HTTP behind a
TLS-terminating pipe (testbed.relay.ProxiedRelay), as behind a production TLS proxy:
the firmware on the MicroPython unix port, which has no `ssl`, reaches the relay with
ws://; Home Assistant reaches it through the pipe with a test CA, and must verify it.
Starting and stopping processes blocks, so tests do it in `run_in_thread`.
"""

from __future__ import annotations

import logging
import socket
import threading
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from homeassistant import block_async_io

from testbed.firmware import DeviceProcess, Entity
from testbed.ha_flows import HA_DEVICE_ENTITIES, PASSWORD, ha_device
from testbed.relay import ProxiedRelay
from testbed.tls import TlsFiles, make_tls

__all__ = ["PASSWORD", "run_in_thread"]


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


@pytest.fixture(autouse=True)
def no_deprecated_api(caplog: pytest.LogCaptureFixture) -> Generator[None]:
    """Fail the test if HA reports the integration for an API it deprecated or
    changed (HA's `report_usage` logs "Detected that custom integration 'homeseal'
    ..."), or if Python warns about one from the integration's code."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        yield
    reported = [
        r.getMessage()
        for when in ("setup", "call", "teardown")
        for r in caplog.get_records(when)  # type: ignore[arg-type]
        if "custom integration 'homeseal'" in r.getMessage()
    ]
    reported += [
        f"{w.filename}:{w.lineno}: {w.message}"
        for w in caught
        if issubclass(w.category, DeprecationWarning) and "custom_components/homeseal" in w.filename
    ]
    assert not reported, reported


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


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


# The relay's login/registration limits are per process and in memory (10 registrations
# per address, then one a minute): restart it (same port, database and key) every few
# tests so each test starts with a fresh budget.
TESTS_PER_RELAY_RUN = 3


@pytest.fixture(scope="module")
def relay_process(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[ProxiedRelay]:
    """One relay per test module: its per-address registration limit (10) is per process."""
    with _sockets():
        relay = ProxiedRelay(tmp_path_factory.mktemp("relay"), tls_files)
        relay.start()
    yield relay
    relay.stop()


@pytest.fixture(scope="module")
def relay_uses() -> list[int]:
    """How many tests used the module's relay since it last started."""
    return [0]


@pytest.fixture
def relay(relay_process: ProxiedRelay, relay_uses: list[int], socket_enabled: None) -> ProxiedRelay:
    """The module's relay, with sockets to 127.0.0.1 allowed for the test."""
    if relay_uses[0] >= TESTS_PER_RELAY_RUN:
        # In a thread: the blocking-I/O detector watches the loop's thread.
        run_in_thread(relay_process.restart)
        relay_uses[0] = 0
    relay_uses[0] += 1
    return relay_process


@pytest.fixture
def make_device(relay: ProxiedRelay, tmp_path: Path) -> Iterator[Callable[..., DeviceProcess]]:
    """Start simulated devices (real firmware, provisioned) connected to the test's relay."""
    devices: list[DeviceProcess] = []

    def make(
        name: str = "Test board",
        start: bool = True,
        window_seconds: int | None = None,
        entities: Sequence[Entity] = HA_DEVICE_ENTITIES,
        **fields: Any,
    ) -> DeviceProcess:
        """`fields`: top-level config.json fields on top of the defaults (save_delay …)."""
        args = ["--window-seconds", str(window_seconds)] if window_seconds is not None else []
        workdir = tmp_path / f"device{len(devices)}"
        device = ha_device(workdir, relay.device_url, name, args, entities)
        device.fields.update(fields)
        devices.append(device)
        run_in_thread(device.provision)
        if start:
            run_in_thread(lambda: device.start(wait_for="relay connected"))
        return device

    yield make
    for device in devices:
        run_in_thread(device.stop)
