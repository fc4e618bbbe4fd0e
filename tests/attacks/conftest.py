"""Fixtures for the attack suite: the real relay process, the attacker's proxy, the real
firmware on the MicroPython unix port behind it, and a controller (the integration's
sans-IO client classes over a real websocket)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_socket  # type: ignore[import-untyped]

from testbed.relay import RelayProcess

from .proxy import Mitm


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    pytest_socket.enable_socket()
    with RelayProcess(tmp_path_factory.mktemp("relay")) as r:
        yield r


@pytest.fixture
async def mitm(relay: RelayProcess, socket_enabled: None) -> AsyncIterator[Mitm]:
    proxy = await Mitm(relay.ws_base).start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
