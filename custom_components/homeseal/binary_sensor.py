"""Binary sensors of HomeSeal devices (GPIO inputs)."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .client.devices import DeviceLink
from .client.messages import EntityInfo
from .entity import HomeSealEntity, async_setup_kind, enum_or_none
from .runtime import HomeSealConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "binary_sensor", HomeSealBinarySensor)


class HomeSealBinarySensor(HomeSealEntity, BinarySensorEntity):
    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        self._attr_device_class = enum_or_none(BinarySensorDeviceClass, info.device_class)

    @property
    def is_on(self) -> bool | None:
        value = self.value
        return value if isinstance(value, bool) else None
