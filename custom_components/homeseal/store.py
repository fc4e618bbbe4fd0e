"""Per-entry persistent state in HA storage: the controller's static key and the last
`describe` of every device (so entities exist, unavailable, before the device is back)."""

from __future__ import annotations

from typing import TypedDict

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN, STORAGE_VERSION
from .vendor.homeseal_protocol import Describe, generate_private_key, private_bytes
from .vendor.homeseal_protocol.messages import encode, parse_device_message

SAVE_DELAY = 10


class StoredData(TypedDict, total=False):
    controller_key: str
    describe: dict[str, str]


class ControllerStore:
    """Wraps one `Store` per config entry (`.storage/homeseal.<entry_id>`)."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._store: Store[StoredData] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}", private=True, atomic_writes=True
        )
        self._data: StoredData = {}

    async def async_load(self) -> X25519PrivateKey:
        """Load, creating and saving the controller key on first use."""
        self._data = await self._store.async_load() or {}
        if "controller_key" not in self._data:
            self._data["controller_key"] = private_bytes(generate_private_key()).hex()
            await self._store.async_save(self._data)
        return X25519PrivateKey.from_private_bytes(bytes.fromhex(self._data["controller_key"]))

    def cached_describe(self, device: str) -> Describe | None:
        text = self._data.get("describe", {}).get(device)
        if text is None:
            return None
        try:
            message = parse_device_message(text.encode())
        except ValueError:
            return None
        return message if isinstance(message, Describe) else None

    def save_describe(self, device: str, describe: Describe) -> None:
        cache = self._data.setdefault("describe", {})
        text = encode(describe).decode()
        if cache.get(device) != text:
            cache[device] = text
            self._store.async_delay_save(lambda: self._data, SAVE_DELAY)

    def forget_device(self, device: str) -> None:
        if self._data.get("describe", {}).pop(device, None) is not None:
            self._store.async_delay_save(lambda: self._data, SAVE_DELAY)

    async def async_flush(self) -> None:
        """Write pending changes now (on unload: the next load must see them)."""
        await self._store.async_save(self._data)

    async def async_remove(self) -> None:
        await self._store.async_remove()
