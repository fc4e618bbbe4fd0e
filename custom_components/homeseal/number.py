"""Numbers of HomeSeal devices: a set-point the device acts on (PWM duty, servo angle)
or keeps."""

from __future__ import annotations

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberMode
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
    async_setup_kind(hass, entry, async_add_entities, "number", HomeSealNumber)


class HomeSealNumber(HomeSealEntity, NumberEntity):
    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        # A describe's number always has all three (PROTOCOL §7).
        if info.min is not None and info.max is not None:
            self._attr_native_min_value = info.min
            self._attr_native_max_value = info.max
        if info.step is not None:
            self._attr_native_step = info.step
        self._attr_native_unit_of_measurement = info.unit
        self._attr_device_class = enum_or_none(NumberDeviceClass, info.device_class)
        self._attr_mode = enum_or_none(NumberMode, info.mode) or NumberMode.AUTO

    @property
    def native_value(self) -> float | None:
        value = self.state_value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return value

    async def async_set_native_value(self, value: float) -> None:
        # HA hands a float; the device's range and step may be whole numbers.
        await self._async_command("set", value=int(value) if value.is_integer() else value)
