"""Runtime data of a loaded HomeSeal entry, and the TLS setting built from its data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from .client.api import RelayApi, SslSetting, build_ssl_context, parse_fingerprint
from .client.hub import Hub
from .const import CONF_CA_PEM, CONF_FINGERPRINT
from .store import ControllerStore


@dataclass
class HomeSealRuntimeData:
    """What a loaded entry holds: the relay API, the hub and its storage."""

    api: RelayApi
    hub: Hub
    store: ControllerStore
    # device id (bytes) -> subentry id, for the devices this entry manages now
    subentries: dict[bytes, str] = field(default_factory=dict)


type HomeSealConfigEntry = ConfigEntry[HomeSealRuntimeData]


async def async_ssl_setting(hass: HomeAssistant, data: Mapping[str, Any]) -> SslSetting:
    """TLS verification for a relay: a pinned certificate, a custom CA, or system CAs.

    Building an SSLContext loads certificates, so it runs in the executor.
    """
    if fingerprint := data.get(CONF_FINGERPRINT):
        return aiohttp.Fingerprint(parse_fingerprint(fingerprint))
    if ca_pem := data.get(CONF_CA_PEM):
        return await hass.async_add_executor_job(build_ssl_context, ca_pem)
    return True
