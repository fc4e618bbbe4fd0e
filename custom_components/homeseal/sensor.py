"""Sensors of HomeSeal devices (ADC, internal temperature)."""

from __future__ import annotations

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .client.devices import DeviceLink
from .client.messages import EntityInfo
from .entity import HomeSealEntity, async_setup_kind
from .runtime import HomeSealConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "sensor", HomeSealSensor)


def _enum[E: (SensorDeviceClass, SensorStateClass)](cls: type[E], value: str | None) -> E | None:
    """A device class / state class the device named, if HA knows it (else none)."""
    if value is None:
        return None
    try:
        return cls(value)
    except ValueError:
        return None


class HomeSealSensor(HomeSealEntity, SensorEntity):
    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        self._attr_device_class = _enum(SensorDeviceClass, info.device_class)
        self._attr_state_class = _enum(SensorStateClass, info.state_class)
        self._attr_native_unit_of_measurement = info.unit

    @property
    def native_value(self) -> float | int | None:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return value
