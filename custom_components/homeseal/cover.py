"""Covers of HomeSeal devices: two interlocked outputs, position from travel times."""

from __future__ import annotations

from typing import Any

from homeassistant.components.cover import (
    ATTR_POSITION,
    CoverDeviceClass,
    CoverEntity,
    CoverEntityFeature,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import HomeSealEntity, async_setup_kind, enum_or_none
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import CoverState, DeviceLink, EntityInfo

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "cover", HomeSealCover)


class HomeSealCover(HomeSealEntity, CoverEntity):
    _attr_supported_features = (
        CoverEntityFeature.OPEN
        | CoverEntityFeature.CLOSE
        | CoverEntityFeature.STOP
        | CoverEntityFeature.SET_POSITION
    )

    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        self._attr_device_class = enum_or_none(CoverDeviceClass, info.device_class)

    @property
    def current_cover_position(self) -> int | None:
        return None if (cover := self.state_as(CoverState)) is None else cover.position

    @property
    def is_closed(self) -> bool | None:
        # Unknown until the device knows its position (a first full run tells it).
        if (cover := self.state_as(CoverState)) is None or cover.position is None:
            return None
        return cover.position == 0

    @property
    def is_opening(self) -> bool | None:
        return None if (cover := self.state_as(CoverState)) is None else cover.motion == "opening"

    @property
    def is_closing(self) -> bool | None:
        return None if (cover := self.state_as(CoverState)) is None else cover.motion == "closing"

    async def async_open_cover(self, **kwargs: Any) -> None:
        await self._async_command("open")

    async def async_close_cover(self, **kwargs: Any) -> None:
        await self._async_command("close")

    async def async_stop_cover(self, **kwargs: Any) -> None:
        await self._async_command("stop")

    async def async_set_cover_position(self, **kwargs: Any) -> None:
        await self._async_command("set_position", position=int(kwargs[ATTR_POSITION]))
