"""Buttons of HomeSeal devices (momentary pulses)."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import HomeSealEntity, async_setup_kind
from .runtime import HomeSealConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "button", HomeSealButton)


class HomeSealButton(HomeSealEntity, ButtonEntity):
    async def async_press(self) -> None:
        # The device keeps the results of its last commands by id, so a press is never
        # repeated by a retry.
        await self._async_command("press")
