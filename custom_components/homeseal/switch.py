"""Switches of HomeSeal devices (GPIO outputs)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import HomeSealEntity, async_setup_kind
from .runtime import HomeSealConfigEntry

# Commands wait for the device; the link serializes nothing, so no limit is needed.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "switch", HomeSealSwitch)


class HomeSealSwitch(HomeSealEntity, SwitchEntity):
    @property
    def is_on(self) -> bool | None:
        return self.state_as(bool)

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._async_command("turn_on")

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_command("turn_off")
