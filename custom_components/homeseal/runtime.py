"""Runtime data of a loaded HomeSeal entry, and the TLS setting built from its data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntry

from .const import CONF_CA_PEM, CONF_FINGERPRINT
from .store import ControllerStore
from .vendor.homeseal_protocol import (
    Controller,
    RelayApi,
    SslSetting,
    build_ssl_context,
    parse_fingerprint,
)


@dataclass
class HomeSealRuntimeData:
    """What a loaded entry holds: the relay API, the controller and its storage."""

    api: RelayApi
    controller: Controller
    store: ControllerStore
    # The relay account's device in HA's registry; paired devices are connected via it.
    account_device: DeviceEntry
    # What the connection was set up with (connection_settings); another value means reload.
    settings: Mapping[str, Any]
    # device id (bytes) -> subentry id, for the devices this entry manages now
    subentries: dict[bytes, str] = field(default_factory=dict)


type HomeSealConfigEntry = ConfigEntry[HomeSealRuntimeData]

# The entry data a live connection depends on: any change needs a new connection.
CONNECTION_KEYS = (CONF_URL, CONF_TOKEN, CONF_CA_PEM, CONF_FINGERPRINT)


def connection_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: data.get(key) for key in CONNECTION_KEYS}


async def async_ssl_setting(hass: HomeAssistant, data: Mapping[str, Any]) -> SslSetting:
    """TLS verification for a relay: a pinned certificate, a custom CA, or system CAs.

    Building an SSLContext loads certificates, so it runs in the executor.
    """
    if fingerprint := data.get(CONF_FINGERPRINT):
        return aiohttp.Fingerprint(parse_fingerprint(fingerprint))
    if ca_pem := data.get(CONF_CA_PEM):
        return await hass.async_add_executor_job(build_ssl_context, ca_pem)
    return True
