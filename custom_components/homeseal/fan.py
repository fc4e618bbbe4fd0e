"""Fans of HomeSeal devices: on/off, PWM speed as a percentage, optional direction."""

from __future__ import annotations

from typing import Any

from homeassistant.components.fan import FanEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import FanEntityFeature
from .entity import HomeSealEntity, async_setup_kind
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import DeviceLink, EntityInfo, FanState

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "fan", HomeSealFan)


class HomeSealFan(HomeSealEntity, FanEntity):
    _attr_speed_count = 100  # PWM: every percentage is a speed of its own

    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        features = FanEntityFeature.TURN_ON | FanEntityFeature.TURN_OFF | FanEntityFeature.SET_SPEED
        if info.reversible:
            features |= FanEntityFeature.DIRECTION
        self._attr_supported_features = features

    @property
    def is_on(self) -> bool | None:
        return None if (fan := self.state_as(FanState)) is None else fan.on

    @property
    def percentage(self) -> int | None:
        # HA's convention: an off fan is at 0 %; the device keeps its speed for the next on.
        if (fan := self.state_as(FanState)) is None:
            return None
        return fan.percentage if fan.on else 0

    @property
    def current_direction(self) -> str | None:
        return None if (fan := self.state_as(FanState)) is None else fan.direction

    async def async_turn_on(
        self, percentage: int | None = None, preset_mode: str | None = None, **kwargs: Any
    ) -> None:
        if percentage == 0:
            await self._async_command("turn_off")
        else:
            await self._async_command("turn_on", percentage=percentage)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_command("turn_off")

    async def async_set_percentage(self, percentage: int) -> None:
        await self.async_turn_on(percentage=percentage)

    async def async_set_direction(self, direction: str) -> None:
        await self._async_command(
            "set_direction", direction="reverse" if direction == "reverse" else "forward"
        )
