"""Diagnostics for HomeSeal: connection, sessions and devices, secrets redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntry

from .const import CONF_CA_PEM, CONF_DEVICE_KEY, CONF_SETUP_CODE, CONF_SETUP_PAYLOAD, DOMAIN
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import DeviceLink, LightState, format_id

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
        "device_id": link.id_text,
        "state": link.state.value,
        "available": link.available,
        "handshakes": link.handshakes,
        "not_recognised": link.not_recognised,
        "refused_since": link.refused_since,
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
    controller = entry.runtime_data.controller
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "relay": {
            "connected": controller.connected,
            "reconnect_attempt": controller.connection.attempt,
            "last_error": controller.connection.last_error,
            "controller_id": format_id(controller.controller_id),
            "frames_dropped": controller.frames_dropped,
        },
        "devices": [_link(link) for link in controller.links.values()],
    }


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: HomeSealConfigEntry, device: DeviceEntry
) -> dict[str, Any]:
    controller = entry.runtime_data.controller
    for link in controller.links.values():
        if (DOMAIN, link.id_text) in device.identifiers:
            return {"relay_connected": controller.connected, "device": _link(link)}
    return {"relay_connected": controller.connected, "device": None}
