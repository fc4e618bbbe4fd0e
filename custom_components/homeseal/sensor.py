"""Sensors of HomeSeal devices: numbers (ADC, internal temperature) and strings (the
device's address, its last restart reason: PROTOCOL §7's text_sensor)."""

from __future__ import annotations

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import HomeSealEntity, async_setup_kind, enum_or_none
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import DeviceLink, EntityInfo

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "sensor", HomeSealSensor)
    async_setup_kind(hass, entry, async_add_entities, "text_sensor", HomeSealTextSensor)


class HomeSealSensor(HomeSealEntity, SensorEntity):
    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        self._attr_device_class = enum_or_none(SensorDeviceClass, info.device_class)
        self._attr_state_class = enum_or_none(SensorStateClass, info.state_class)
        self._attr_native_unit_of_measurement = info.unit

    @property
    def native_value(self) -> float | int | None:
        value = self.state_value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return value


class HomeSealTextSensor(HomeSealEntity, SensorEntity):
    """A string the device reports (HA has no text sensor platform: a sensor without a
    unit or state class holds a string)."""

    @property
    def native_value(self) -> str | None:
        return self.state_as(str)
