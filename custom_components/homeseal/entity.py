"""Base entity for HomeSeal: one HA entity per entity a device describes."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import partial
from typing import Any

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import device_info
from .const import DOMAIN, signal_new_entities
from .runtime import HomeSealConfigEntry
from .vendor.homeseal_protocol import (
    CommandRejected,
    CommandTimeout,
    DeviceLink,
    DeviceOffline,
    EntityInfo,
    EntityKind,
    NotRecognised,
    StateValue,
    format_id,
)


class HomeSealEntity(Entity):
    """An entity of a paired device; available while its session is up."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: HomeSealConfigEntry, link: DeviceLink, info: EntityInfo) -> None:
        self._link = link
        self._info = info
        device = format_id(link.device_id)
        self._attr_unique_id = f"{device}_{info.key}"
        # The name the user gave the entity in the device's config.json: HA cannot
        # translate it. The translation key (the kind) only selects the icon
        # (icons.json) of an entity without a device class.
        self._attr_name = info.name
        if info.device_class is None:
            self._attr_translation_key = info.kind
        if info.category is not None:
            self._attr_entity_category = EntityCategory(info.category)
        # Applied when HA first registers the entity; the user's choice wins after.
        self._attr_entity_registry_enabled_default = not info.disabled_by_default
        describe = link.describe
        self._attr_device_info = device_info(
            entry.runtime_data.account_device,
            (DOMAIN, entry.entry_id),
            identifiers={(DOMAIN, device)},
            name=describe.name if describe else device,
            manufacturer="HomeSeal",
            model=describe.model if describe else None,
            sw_version=describe.fw if describe else None,
            serial_number=device,
        )

    @property
    def available(self) -> bool:
        return self._link.available and any(e.key == self._info.key for e in self._link.entities)

    @property
    def state_value(self) -> StateValue:
        return self._link.values.get(self._info.key)

    def state_as[T](self, kind: type[T]) -> T | None:
        """The state value as the type this entity's kind reports (the link has checked
        every value against its kind, PROTOCOL §7); None while unknown."""
        value = self.state_value
        return value if isinstance(value, kind) else None

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._link.add_listener(self._handle_update))

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()

    async def _async_command(self, action: str, **fields: Any) -> None:
        """Send a command and wait for the device's result; failures are translated."""
        describe = self._link.describe
        placeholders = {
            "entity": self._info.name,
            "device": describe.name if describe else self._link.id_text,
        }
        try:
            await self._link.command(self._info.key, action, **fields)
        except NotRecognised as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="not_recognised",
                translation_placeholders=placeholders,
            ) from err
        except DeviceOffline as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="device_offline",
                translation_placeholders=placeholders,
            ) from err
        except CommandTimeout as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_timeout",
                translation_placeholders=placeholders,
            ) from err
        except CommandRejected as err:
            if err.error == "position_unknown":
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="position_unknown",
                    translation_placeholders=placeholders,
                ) from err
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_rejected",
                translation_placeholders={**placeholders, "error": err.error},
            ) from err


def enum_or_none[E: StrEnum](cls: type[E], value: str | None) -> E | None:
    """A device/state class the device named, if HA knows it; unknown ones are dropped
    rather than failing the entity."""
    if value is None:
        return None
    try:
        return cls(value)
    except ValueError:
        return None


type EntityFactory = Callable[[HomeSealConfigEntry, DeviceLink, EntityInfo], HomeSealEntity]


def async_setup_kind(
    hass: HomeAssistant,
    entry: HomeSealConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    kind: EntityKind,
    factory: EntityFactory,
) -> None:
    """Add entities of one kind now and whenever a device describes new ones."""
    added: set[str] = set()

    @callback
    def add_new() -> None:
        runtime = entry.runtime_data
        for device_id, subentry_id in runtime.subentries.items():
            link = runtime.controller.links.get(device_id)
            if link is None:
                continue
            # Keyed by subentry too: a device removed and paired again gets new entities.
            prefix = f"{subentry_id}/{format_id(device_id)}_"
            new = [
                factory(entry, link, info)
                for info in link.entities
                if info.kind == kind and prefix + info.key not in added
            ]
            for entity in new:
                key = prefix + entity._info.key
                added.add(key)
                # A device that stops describing the entity has it removed (see
                # __init__.py); describing it again later adds it anew.
                entity.async_on_remove(partial(added.discard, key))
            if new:
                async_add_entities(new, config_subentry_id=subentry_id)

    add_new()
    entry.async_on_unload(
        async_dispatcher_connect(hass, signal_new_entities(entry.entry_id), add_new)
    )
