"""Diagnostics for HomeSeal: connection, sessions and devices, secrets redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntry

from .client.devices import DeviceLink
from .client.ids import format_id
from .client.messages import LightState
from .const import CONF_CA_PEM, CONF_DEVICE_KEY, CONF_SETUP_CODE, CONF_SETUP_PAYLOAD, DOMAIN
from .runtime import HomeSealConfigEntry

TO_REDACT = {
    CONF_TOKEN,
    CONF_PASSWORD,
    CONF_USERNAME,
    CONF_DEVICE_KEY,
    CONF_SETUP_CODE,
    CONF_SETUP_PAYLOAD,
    CONF_CA_PEM,
    "controller_key",
    "title",
    "unique_id",
}


def _link(link: DeviceLink) -> dict[str, Any]:
    describe = link.describe
    return {
        "device_id": link.name,
        "state": link.state.value,
        "available": link.available,
        "handshakes": link.handshakes,
        "key_mismatch": link.presented_key is not None,
        "firmware": describe.fw if describe else None,
        "model": describe.model if describe else None,
        "entities": [
            {"key": e.key, "kind": e.kind, "device_class": e.device_class, "unit": e.unit}
            for e in link.entities
        ],
        "values": {
            k: {"on": v.on, "brightness": v.brightness} if isinstance(v, LightState) else v
            for k, v in link.values.items()
        },
    }


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: HomeSealConfigEntry
) -> dict[str, Any]:
    hub = entry.runtime_data.hub
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "relay": {
            "connected": hub.connected,
            "reconnect_attempt": hub.connection.attempt,
            "last_error": hub.connection.last_error,
            "controller_id": format_id(hub.controller_id),
            "frames_dropped": hub.frames_dropped,
        },
        "devices": [_link(link) for link in hub.links.values()],
    }


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: HomeSealConfigEntry, device: DeviceEntry
) -> dict[str, Any]:
    hub = entry.runtime_data.hub
    for link in hub.links.values():
        if (DOMAIN, link.name) in device.identifiers:
            return {"relay_connected": hub.connected, "device": _link(link)}
    return {"relay_connected": hub.connected, "device": None}
