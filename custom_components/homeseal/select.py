"""Selects of HomeSeal devices: one of a set of options the device acts on."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import HomeSealEntity, async_setup_kind
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import DeviceLink, EntityInfo

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "select", HomeSealSelect)


class HomeSealSelect(HomeSealEntity, SelectEntity):
    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        # The device's own option names (its config.json): HA cannot translate them.
        self._attr_options = list(info.options)

    @property
    def current_option(self) -> str | None:
        value = self.state_value
        return value if isinstance(value, str) and value in self._attr_options else None

    async def async_select_option(self, option: str) -> None:
        await self._async_command("select", option=option)
