"""Dimmable lights of HomeSeal devices (PWM outputs)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.light import LightEntity
from homeassistant.components.light.const import ColorMode
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import ATTR_BRIGHTNESS
from .entity import HomeSealEntity, async_setup_kind
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import LightState

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "light", HomeSealLight)


class HomeSealLight(HomeSealEntity, LightEntity):
    _attr_color_mode = ColorMode.BRIGHTNESS
    _attr_supported_color_modes = {ColorMode.BRIGHTNESS}  # noqa: RUF012  # HA's declared type

    @property
    def is_on(self) -> bool | None:
        value = self.state_value
        return value.on if isinstance(value, LightState) else None

    @property
    def brightness(self) -> int | None:
        value = self.state_value
        return value.brightness if isinstance(value, LightState) else None

    async def async_turn_on(self, **kwargs: Any) -> None:
        if ATTR_BRIGHTNESS in kwargs:
            # The device takes 1…255 with turn_on; 0 would mean off.
            brightness = max(1, min(255, int(kwargs[ATTR_BRIGHTNESS])))
            await self._async_command("turn_on", brightness=brightness)
        else:
            await self._async_command("turn_on")

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_command("turn_off")
