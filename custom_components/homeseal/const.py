"""Constants of the HomeSeal integration."""

from __future__ import annotations

import os
from typing import Final

DOMAIN: Final = "homeseal"

CONF_CA_PEM: Final = "ca_pem"
CONF_FINGERPRINT: Final = "fingerprint"
CONF_PASSWORD_CONFIRM: Final = "password_confirm"
CONF_DEVICE_ID: Final = "device_id"
CONF_DEVICE_KEY: Final = "device_key"
CONF_SETUP_CODE: Final = "setup_code"
CONF_SETUP_PAYLOAD: Final = "setup_payload"

# The config flow's form section that holds the self-hosted relay's TLS settings.
SECTION_TLS: Final = "tls"

SUBENTRY_DEVICE: Final = "device"

STORAGE_VERSION: Final = 1

# How long a device must keep refusing this HA, while online, before a repair issue says
# so (SECURITY.md L3): 10 minutes, or HOMESEAL_NOT_RECOGNISED_AFTER seconds (the
# browser tests walk that repair without waiting 10 minutes).
NOT_RECOGNISED_AFTER: Final = float(os.environ.get("HOMESEAL_NOT_RECOGNISED_AFTER", "600"))

# How long removal waits for the device to confirm `unpair` before releasing it at the relay.
UNPAIR_TIMEOUT: Final = 10.0


def signal_new_entities(entry_id: str) -> str:
    """Dispatcher signal: a device described entities the platforms may not have yet."""
    return f"{DOMAIN}_{entry_id}_new_entities"
