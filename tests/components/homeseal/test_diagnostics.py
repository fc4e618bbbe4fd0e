"""Diagnostics of an entry and of a device: the connection and session state, with every
secret redacted."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from custom_components.homeseal import diagnostics
from custom_components.homeseal.compat import async_get_device
from custom_components.homeseal.const import DOMAIN
from testbed.firmware import DeviceProcess
from testbed.ha_flows import pair, setup_account
from testbed.relay import ProxiedRelay

pytestmark = pytest.mark.micropython  # the real firmware, through the real relay


async def test_diagnostics_redact_secrets(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    data = await diagnostics.async_get_config_entry_diagnostics(hass, entry)
    text = json.dumps(data, default=str)
    subentry = next(iter(entry.subentries.values()))
    for secret in (
        entry.data["token"],
        entry.data["username"],
        subentry.data["device_key"],
        device.setup_code,
        relay.tls.ca_pem.splitlines()[1],
    ):
        assert secret not in text
    assert data["relay"]["connected"] is True
    assert data["devices"][0]["state"] == "ready"
    assert data["devices"][0]["values"]["lamp"] == {"on": False, "brightness": 255}
    assert data["entry"]["data"]["token"] == "**REDACTED**"

    dev = async_get_device(dr.async_get(hass), (DOMAIN, device.id_text), entry.entry_id)
    assert dev is not None
    device_data = await diagnostics.async_get_device_diagnostics(hass, entry, dev)
    assert device_data["device"]["device_id"] == device.id_text
    assert device_data["device"]["model"] == "sim-1"
    hub_device = async_get_device(dr.async_get(hass), (DOMAIN, entry.entry_id), entry.entry_id)
    assert hub_device is not None
    assert (await diagnostics.async_get_device_diagnostics(hass, entry, hub_device))[
        "device"
    ] is None
