"""Test configuration shared by every suite.

pytest-homeassistant-custom-component is active for the whole run. Two of its
habits need adjusting here:

- Its testing_config ships a `custom_components` package of its own; importing
  ours first, at collection time, keeps it from being shadowed.
- It blocks sockets for every test. Only the Home Assistant tests
  (tests/components/) should run under that rule (they opt in to 127.0.0.1 with
  `socket_enabled` where a real relay is involved); the relay, firmware,
  interop and end-to-end suites talk to real processes on loopback.
"""

from __future__ import annotations

import pytest

import custom_components.homeseal  # noqa: F401  (must precede any hass fixture)


@pytest.fixture(autouse=True)
def _loopback_sockets_outside_ha_tests(request: pytest.FixtureRequest) -> None:
    if "components" not in request.path.parts:
        request.getfixturevalue("socket_enabled")
