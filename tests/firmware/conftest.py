"""Fixtures for the firmware suite: a real relay process per module, devices on
the MicroPython unix port, and a controller with its own relay account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket  # type: ignore[import-untyped]

from .harness import Controller, DeviceProcess, RelayProcess, new_account


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    # Module fixtures run before tests/conftest.py re-enables sockets for this suite.
    pytest_socket.enable_socket()
    r = RelayProcess(tmp_path_factory.mktemp("relay"))
    r.start()
    yield r
    r.stop()


@pytest.fixture
async def controller(relay: RelayProcess, socket_enabled: None) -> AsyncIterator[Controller]:
    _, token = await new_account(relay.http)
    ctl = await Controller(relay.http, token).connect()
    yield ctl
    await ctl.close()


@pytest.fixture
def make_device(
    tmp_path: Path, relay: RelayProcess, socket_enabled: None
) -> Iterator[Callable[..., DeviceProcess]]:
    devices: list[DeviceProcess] = []

    def make(relay_url: str | None = None, **kwargs: Any) -> DeviceProcess:
        workdir = tmp_path / f"device{len(devices)}"
        d = DeviceProcess(workdir, relay_url or relay.ws_device, **kwargs)
        devices.append(d)
        return d

    yield make
    for d in devices:
        d.stop()
