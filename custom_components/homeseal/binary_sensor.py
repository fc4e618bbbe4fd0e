"""Binary sensors of HomeSeal devices (GPIO inputs)."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import BinarySensorDeviceClass
from .const import DOMAIN
from .entity import HomeSealEntity, async_setup_kind, enum_or_none
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import DeviceLink, EntityInfo

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_entities([RelayConnectionSensor(entry)])
    async_setup_kind(hass, entry, async_add_entities, "binary_sensor", HomeSealBinarySensor)


class HomeSealBinarySensor(HomeSealEntity, BinarySensorEntity):
    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        self._attr_device_class = enum_or_none(BinarySensorDeviceClass, info.device_class)

    @property
    def is_on(self) -> bool | None:
        return self.state_as(bool)


class RelayConnectionSensor(BinarySensorEntity):
    """Whether this relay account's connection is up (on the account's service device)."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_translation_key = "relay_connection"
    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, entry: HomeSealConfigEntry) -> None:
        self._controller = entry.runtime_data.controller
        self._attr_unique_id = f"{entry.entry_id}_relay_connection"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, entry.entry_id)})

    @property
    def is_on(self) -> bool:
        return self._controller.connected

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._controller.add_connection_listener(self.async_write_ha_state))
