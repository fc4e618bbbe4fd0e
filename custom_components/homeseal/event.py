"""Events of HomeSeal devices: a physical button's single, double and long presses, as
Home Assistant's standard button event types, for automations."""

from __future__ import annotations

from homeassistant.components.event import EventDeviceClass, EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import BUTTON_EVENT_TYPES
from .entity import HomeSealEntity, async_setup_kind
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import DeviceLink, EntityInfo, EventType

PARALLEL_UPDATES = 0

# PROTOCOL §7's event type → HA's event type and its attributes.
_HA_EVENTS: dict[EventType, tuple[str, dict[str, int]]] = {
    "single": (BUTTON_EVENT_TYPES["press_end"], {}),
    "double": (BUTTON_EVENT_TYPES["multi_press_end"], {"multi_press_count": 2}),
    "long": (BUTTON_EVENT_TYPES["long_press_start"], {}),
}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_setup_kind(hass, entry, async_add_entities, "event", HomeSealEvent)


class HomeSealEvent(HomeSealEntity, EventEntity):
    _attr_device_class = EventDeviceClass.BUTTON

    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        super().__init__(entry, link, info)
        self._attr_event_types = [_HA_EVENTS[t][0] for t in info.event_types]

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._link.add_event_listener(self._handle_event))

    @callback
    def _handle_event(self, key: str, event_type: EventType) -> None:
        if key != self._info.key or event_type not in self._info.event_types:
            return
        ha_type, attributes = _HA_EVENTS[event_type]
        self._trigger_event(ha_type, attributes or None)
        self.async_write_ha_state()
