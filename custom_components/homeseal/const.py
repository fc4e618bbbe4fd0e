"""Constants of the HomeSeal integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "homeseal"

CONF_CA_PEM: Final = "ca_pem"
CONF_FINGERPRINT: Final = "fingerprint"
CONF_ACCOUNT_ACTION: Final = "account_action"
CONF_DEVICE_ID: Final = "device_id"
CONF_DEVICE_KEY: Final = "device_key"
CONF_SETUP_CODE: Final = "setup_code"
CONF_SETUP_PAYLOAD: Final = "setup_payload"

ACTION_SIGN_IN: Final = "sign_in"
ACTION_CREATE: Final = "create_account"

SUBENTRY_DEVICE: Final = "device"

STORAGE_VERSION: Final = 1

# How long removal waits for the device to confirm `unpair` before releasing it at the relay.
UNPAIR_TIMEOUT: Final = 10.0


def signal_new_entities(entry_id: str) -> str:
    """Dispatcher signal: a device described entities the platforms may not have yet."""
    return f"{DOMAIN}_{entry_id}_new_entities"
