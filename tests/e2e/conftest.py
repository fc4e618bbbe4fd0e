"""End-to-end fixtures: the whole system as real processes (testbed.system, as the demo).

One `System` (relay, simulated device on wss://, Home Assistant) per test
module: starting Home Assistant is the expensive part, so a module's tests share
it and each test leaves the system as it found it (everything up and paired).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_socket  # type: ignore[import-untyped]

from testbed.process import TestbedError
from testbed.system import System


def _dump_logs(system: System) -> str:
    parts = []
    for proc in system.parts:
        parts.append(f"--- {proc.name} ({proc.log}) ---\n{proc.output()[-2500:]}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    # The HA test plugin blocks sockets before each test's setup and the shared
    # conftest lifts that only after fixtures ran; this fixture talks to loopback.
    pytest_socket.enable_socket()
    state: Path = tmp_path_factory.mktemp("e2e")
    sys_ = System(state, ha_user="owner", ha_password="e2e owner password")
    try:
        sys_.up()
    except TestbedError as err:
        logs = _dump_logs(sys_)
        sys_.down()
        pytest.fail(f"the system did not come up: {err}\n{logs}")
    try:
        yield sys_
    finally:
        sys_.down()


@pytest.fixture
def entities(system: System) -> dict[str, str]:
    """entity key → entity_id; waits until every entity is available."""
    pytest_socket.enable_socket()  # see `system`
    return system.wait_entities_available(timeout=30)
