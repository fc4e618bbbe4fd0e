"""Lights of HomeSeal devices: PWM outputs, dimmable, RGB, RGBW or colour temperature."""

from __future__ import annotations

from typing import Any

from homeassistant.components.light import LightEntity
from homeassistant.components.light.const import ColorMode
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import ATTR_BRIGHTNESS, ATTR_COLOR_TEMP_KELVIN, ATTR_RGB_COLOR, ATTR_RGBW_COLOR
from .entity import HomeSealEntity, async_setup_kind
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import DeviceLink, EntityInfo, LightState

PARALLEL_UPDATES = 0

# A device's color_mode (PROTOCOL §7) → HA's; one mode per light, declared explicitly.
COLOR_MODES = {
    "brightness": ColorMode.BRIGHTNESS,
    "rgb": ColorMode.RGB,
    "rgbw": ColorMode.RGBW,
    "color_temp": ColorMode.COLOR_TEMP,
}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "light", HomeSealLight)


def _channels(colour: Any) -> tuple[int, ...]:
    """HA's colour as the device's channels (integers 0…255)."""
    return tuple(max(0, min(255, round(c))) for c in colour)


class HomeSealLight(HomeSealEntity, LightEntity):
    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        self._attr_color_mode = COLOR_MODES[info.color_mode]
        self._attr_supported_color_modes = {self._attr_color_mode}
        if info.min_kelvin is not None and info.max_kelvin is not None:
            self._attr_min_color_temp_kelvin = info.min_kelvin
            self._attr_max_color_temp_kelvin = info.max_kelvin

    @property
    def is_on(self) -> bool | None:
        return None if (light := self.state_as(LightState)) is None else light.on

    @property
    def brightness(self) -> int | None:
        return None if (light := self.state_as(LightState)) is None else light.brightness

    @property
    def rgb_color(self) -> tuple[int, int, int] | None:
        return None if (light := self.state_as(LightState)) is None else light.rgb

    @property
    def rgbw_color(self) -> tuple[int, int, int, int] | None:
        return None if (light := self.state_as(LightState)) is None else light.rgbw

    @property
    def color_temp_kelvin(self) -> int | None:
        return None if (light := self.state_as(LightState)) is None else light.kelvin

    async def async_turn_on(self, **kwargs: Any) -> None:
        fields: dict[str, Any] = {}
        if ATTR_BRIGHTNESS in kwargs:
            # The device takes 1…255 with turn_on; 0 would mean off.
            fields["brightness"] = max(1, min(255, int(kwargs[ATTR_BRIGHTNESS])))
        # HA converts a colour asked for in another form to the light's one mode.
        if ATTR_RGB_COLOR in kwargs:
            fields["rgb"] = _channels(kwargs[ATTR_RGB_COLOR])
        elif ATTR_RGBW_COLOR in kwargs:
            fields["rgbw"] = _channels(kwargs[ATTR_RGBW_COLOR])
        elif ATTR_COLOR_TEMP_KELVIN in kwargs:
            # HA hands on what was asked for; the lamp takes only its own range.
            kelvin = int(kwargs[ATTR_COLOR_TEMP_KELVIN])
            low, high = self.min_color_temp_kelvin, self.max_color_temp_kelvin
            fields["kelvin"] = max(low, min(high, kelvin))
        await self._async_command("turn_on", **fields)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_command("turn_off")
