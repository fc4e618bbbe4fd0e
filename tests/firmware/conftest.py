"""Fixtures for the firmware suite: a real relay process per module, devices on
the MicroPython unix port (testbed.firmware's test device, every entity kind), and a
controller with its own relay account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket  # type: ignore[import-untyped]

from testbed.accounts import new_account
from testbed.endpoints import Controller
from testbed.firmware import DeviceProcess
from testbed.relay import RelayProcess


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    # Module fixtures run before tests/conftest.py re-enables sockets for this suite.
    pytest_socket.enable_socket()
    with RelayProcess(tmp_path_factory.mktemp("relay")) as r:
        yield r


@pytest.fixture
async def controller(relay: RelayProcess, socket_enabled: None) -> AsyncIterator[Controller]:
    _, token = await new_account(relay.base)
    ctl = await Controller(relay.base, token).connect()
    yield ctl
    await ctl.close()


@pytest.fixture
def own_relay(tmp_path: Path, socket_enabled: None) -> Iterator[RelayProcess]:
    """A relay of the test's own, to stop and restart without disturbing the module's."""
    r = RelayProcess(tmp_path / "relay")
    r.start()
    yield r
    r.stop()


@pytest.fixture
def make_device(
    tmp_path: Path, relay: RelayProcess, socket_enabled: None
) -> Iterator[Callable[..., DeviceProcess]]:
    devices: list[DeviceProcess] = []

    def make(relay_url: str | None = None, **kwargs: Any) -> DeviceProcess:
        workdir = tmp_path / f"device{len(devices)}"
        d = DeviceProcess(workdir, relay_url or relay.device_url, **kwargs)
        devices.append(d)
        return d

    yield make
    for d in devices:
        d.stop()
