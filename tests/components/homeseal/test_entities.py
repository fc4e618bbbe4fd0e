"""Entities of paired devices: one per entity a device describes, commands to the pins
and state from them, availability, the describe cache, with the real relay and the
real firmware (PROTOCOL §6, §7)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from homeassistant.components.binary_sensor import BinarySensorDeviceClass
from homeassistant.components.light import ATTR_BRIGHTNESS
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components.homeseal.compat import async_get_device
from custom_components.homeseal.const import DOMAIN
from custom_components.homeseal.entity import enum_or_none
from testbed.firmware import DeviceProcess
from testbed.ha_flows import (
    HA_DEVICE_ENTITIES,
    entity_ids,
    pair,
    setup_account,
    wait_available,
    wait_for,
)
from testbed.relay import ProxiedRelay
from tests.firmware.statefiles import read_record

from .conftest import run_in_thread

pytestmark = pytest.mark.micropython  # the real firmware, through the real relay


async def test_pair_and_control(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    ids = entity_ids(hass, subentry_id)
    assert ids == [
        "binary_sensor.test_board_door",
        "button.test_board_bell",
        "light.test_board_lamp",
        "sensor.test_board_temperature",
        "switch.test_board_relay",
    ]
    dev = async_get_device(dr.async_get(hass), (DOMAIN, device.id_text), entry.entry_id)
    assert dev is not None
    assert dev.model == "sim-1"
    assert dev.sw_version
    assert dev.name == "Test board"

    assert hass.states.get("switch.test_board_relay").state == STATE_OFF
    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.test_board_relay"}, blocking=True
    )
    assert (await device.pins())["2"] == 1
    await wait_for(lambda: hass.states.get("switch.test_board_relay").state == STATE_ON)

    await hass.services.async_call(
        "light",
        "turn_on",
        {ATTR_ENTITY_ID: "light.test_board_lamp", ATTR_BRIGHTNESS: 128},
        blocking=True,
    )
    await wait_for(
        lambda: hass.states.get("light.test_board_lamp").attributes.get(ATTR_BRIGHTNESS) == 128
    )
    assert hass.states.get("light.test_board_lamp").state == STATE_ON
    assert (await device.pins())["3"] == 128 * 257


async def test_sensors_button_and_push_updates(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)

    temp = hass.states.get("sensor.test_board_temperature")
    assert temp.state == "25.0"
    assert temp.attributes["unit_of_measurement"] == "°C"
    assert temp.attributes["device_class"] == "temperature"
    assert temp.attributes["state_class"] == "measurement"
    door = hass.states.get("binary_sensor.test_board_door")
    assert door.attributes["device_class"] == "door"
    assert door.state == STATE_ON  # input with pull-up reads 1

    # The device pushes changes of its inputs and sensors.
    await device.set_pin("4", 0)
    await wait_for(lambda: hass.states.get("binary_sensor.test_board_door").state == STATE_OFF)
    await device.set_pin("internal_temp", 31.5)
    await wait_for(lambda: hass.states.get("sensor.test_board_temperature").state == "31.5")

    before = (await device.pulses())["5"]
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: "button.test_board_bell"}, blocking=True
    )
    assert (await device.pulses())["5"] == before + 1

    await hass.services.async_call(
        "light", "turn_off", {ATTR_ENTITY_ID: "light.test_board_lamp"}, blocking=True
    )
    await wait_for(lambda: hass.states.get("light.test_board_lamp").state == STATE_OFF)
    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.test_board_relay"}, blocking=True
    )
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.test_board_relay"}, blocking=True
    )
    assert (await device.pins())["2"] == 0
    await hass.services.async_call(
        "light", "turn_on", {ATTR_ENTITY_ID: "light.test_board_lamp"}, blocking=True
    )
    await wait_for(lambda: hass.states.get("light.test_board_lamp").state == STATE_ON)


async def test_availability_on_device_and_relay_loss(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    ids = entity_ids(hass, subentry_id)

    # The device goes away: PRESENCE offline from the relay makes everything unavailable.
    run_in_thread(device.stop)
    await wait_available(hass, ids, available=False)
    # It comes back: a new session, describe, state; available again with fresh state.
    run_in_thread(device.start)
    await wait_available(hass, ids)
    assert hass.states.get("sensor.test_board_temperature").state == "25.0"

    # The relay goes away: unavailable; it restarts: the integration reconnects.
    run_in_thread(relay.stop_relay)
    await wait_available(hass, ids, available=False)
    run_in_thread(relay.start)
    await wait_available(hass, ids)
    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.test_board_relay"}, blocking=True
    )
    assert (await device.pins())["2"] == 1


async def test_command_errors(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    link = next(iter(entry.runtime_data.controller.links.values()))
    switch = hass.data["entity_components"]["switch"].get_entity("switch.test_board_relay")
    button = hass.data["entity_components"]["button"].get_entity("button.test_board_bell")

    # The device refuses an action its entity does not have.
    with pytest.raises(HomeAssistantError) as err:
        await button._async_command("turn_on")
    assert err.value.translation_key == "command_rejected"
    assert err.value.translation_placeholders["error"] == "unsupported_action"
    assert str(err.value) == "Test board rejected the command for Bell: unsupported_action"

    # The device stops answering (process frozen): the command times out.
    link.command_timeout = 0.5
    run_in_thread(device.freeze)
    try:
        with pytest.raises(HomeAssistantError) as err:
            await hass.services.async_call(
                "switch", "turn_on", {ATTR_ENTITY_ID: "switch.test_board_relay"}, blocking=True
            )
        assert err.value.translation_key == "command_timeout"
    finally:
        run_in_thread(device.thaw)

    # Offline: the device is gone; a command that still reaches the entity is refused.
    run_in_thread(device.stop)
    await wait_for(lambda: not link.available)
    with pytest.raises(HomeAssistantError) as err:
        await switch.async_turn_on()
    assert err.value.translation_key == "device_offline"


async def test_entities_from_cache_after_restart(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    """After a restart the entities exist (unavailable) before the device is back."""
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    ids = entity_ids(hass, subentry_id)
    run_in_thread(device.stop)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    link = next(iter(entry.runtime_data.controller.links.values()))
    assert link.describe is not None
    assert link.describe.name == "Test board"
    await wait_available(hass, ids, available=False)
    run_in_thread(device.start)
    await wait_available(hass, ids)


async def test_bad_cached_describe_is_ignored(
    hass: HomeAssistant, relay: ProxiedRelay, hass_storage: dict[str, Any]
) -> None:
    entry = await setup_account(hass, relay)
    store = entry.runtime_data.store
    assert store.cached_describe("aaaa-aaaa-aaaa-aaaa") is None
    store._data["describe"] = {
        "aaaa-aaaa-aaaa-aaaa": "not json",
        "bbbb-bbbb-bbbb-bbbb": '{"t":"ping","id":1}',
    }
    assert store.cached_describe("aaaa-aaaa-aaaa-aaaa") is None
    assert store.cached_describe("bbbb-bbbb-bbbb-bbbb") is None
    store.forget_device("aaaa-aaaa-aaaa-aaaa")
    store.forget_device("cccc-cccc-cccc-cccc")
    assert "aaaa-aaaa-aaaa-aaaa" not in store._data["describe"]


def test_unknown_device_classes_are_dropped() -> None:
    assert enum_or_none(SensorDeviceClass, "temperature") is SensorDeviceClass.TEMPERATURE
    assert enum_or_none(SensorDeviceClass, "flux_capacitance") is None
    assert enum_or_none(BinarySensorDeviceClass, None) is None


async def test_device_name_and_stale_entities_follow_describe(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    """The subentry and the HA device take the name the device gives itself; an entity
    it stops describing is removed (not left unavailable); describing it again adds it."""
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    assert entry.subentries[subentry_id].title == "Test board"
    assert len(entity_ids(hass, subentry_id)) == 5

    def restart(name: str, entities: list[Any]) -> None:
        device.stop()
        device.entities = entities
        device.write_config(name=name)
        device.start(wait_for="relay connected")

    every = list(device.entities)
    without_bell = [e for e in every if e["kind"] != "button"]
    run_in_thread(lambda: restart("Garden board", without_bell))
    await wait_for(lambda: entry.subentries[subentry_id].title == "Garden board")
    await wait_for(lambda: "button.test_board_bell" not in entity_ids(hass, subentry_id))
    assert hass.states.get("button.test_board_bell") is None
    dev = async_get_device(dr.async_get(hass), (DOMAIN, device.id_text), entry.entry_id)
    assert dev is not None
    assert dev.name == "Garden board"
    assert len(entity_ids(hass, subentry_id)) == 4

    run_in_thread(lambda: restart("Garden board", every))
    await wait_for(lambda: "button.test_board_bell" in entity_ids(hass, subentry_id))


async def test_entity_categories_and_disabled_by_default(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    """The category and the registry default a device's config gives an entity reach
    HA's entity registry: a diagnostic sensor, a config switch, a sensor disabled by
    default (no state until the user enables it), the others as before."""
    chip_sensor = {"key": "chip", "kind": "sensor", "name": "Chip", "source": "internal_temp",
            "category": "diagnostic", "disabled_by_default": True}  # fmt: skip
    device = make_device(
        entities=[
            *(
                {**e, "category": "config"} if e["key"] == "relay1" else e
                for e in HA_DEVICE_ENTITIES
            ),
            chip_sensor,
        ]
    )
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    registry = er.async_get(hass)
    chip = registry.async_get("sensor.test_board_chip")
    assert chip is not None
    assert chip.entity_category is EntityCategory.DIAGNOSTIC
    assert chip.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get("sensor.test_board_chip") is None
    relay_switch = registry.async_get("switch.test_board_relay")
    assert relay_switch.entity_category is EntityCategory.CONFIG
    assert relay_switch.disabled_by is None
    lamp = registry.async_get("light.test_board_lamp")
    assert lamp.entity_category is None
    assert lamp.disabled_by is None
    assert hass.states.get("switch.test_board_relay").state == STATE_OFF


async def test_outputs_restored_after_the_device_reboots(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    """A switch and a light with `restore: last`, set from HA, come back as they were
    after a `kill -9` of the device, at its pins and in HA (not off, with HA mirroring
    that)."""
    outputs = ("switch", "light")
    device = make_device(
        entities=[
            {**e, "restore": "last"} if e["kind"] in outputs else e for e in HA_DEVICE_ENTITIES
        ],
        save_delay=1,
    )
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.test_board_relay"}, blocking=True
    )
    await hass.services.async_call(
        "light",
        "turn_on",
        {ATTR_ENTITY_ID: "light.test_board_lamp", ATTR_BRIGHTNESS: 90},
        blocking=True,
    )
    saved = {"relay1": True, "lamp": {"on": True, "brightness": 90}}
    # Written save_delay after the change, by another process: polled.
    record = partial(read_record, device.state, "outputs.json")
    async with asyncio.timeout(15):
        while await hass.async_add_executor_job(record) != saved:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    def reboot() -> None:
        device.kill()
        device.start(wait_for="control socket")

    run_in_thread(reboot)
    pins = await device.pins()
    assert (pins["2"], pins["3"]) == (1, 90 * 257)  # at boot, before any session
    await wait_available(hass, ["switch.test_board_relay", "light.test_board_lamp"])
    await wait_for(lambda: hass.states.get("switch.test_board_relay").state == STATE_ON)
    lamp = hass.states.get("light.test_board_lamp")
    assert lamp.state == STATE_ON
    assert lamp.attributes[ATTR_BRIGHTNESS] == 90


async def test_relay_connection_entity(hass: HomeAssistant, relay: ProxiedRelay) -> None:
    entry = await setup_account(hass, relay)
    registry = er.async_get(hass)
    entity_id = registry.async_get_entity_id(
        "binary_sensor", DOMAIN, f"{entry.entry_id}_relay_connection"
    )
    assert entity_id is not None
    assert registry.async_get(entity_id).entity_category is EntityCategory.DIAGNOSTIC
    state = hass.states.get(entity_id)
    assert state.state == STATE_ON
    assert state.attributes["device_class"] == "connectivity"
    assert state.name.endswith("Relay connection")
    run_in_thread(relay.stop_relay)
    await wait_for(lambda: hass.states.get(entity_id).state == STATE_OFF)
    run_in_thread(relay.start)
    await wait_for(lambda: hass.states.get(entity_id).state == STATE_ON, limit=60)


async def test_entity_names_and_icon_keys(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    """Entities carry the names written in the device's config; those without a device
    class get the kind as translation key (its icon in icons.json), the others none."""
    device = make_device()
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    registry = er.async_get(hass)
    switch = registry.async_get("switch.test_board_relay")
    door = registry.async_get("binary_sensor.test_board_door")
    assert switch.translation_key == "switch"
    assert door.translation_key is None
    assert hass.states.get("switch.test_board_relay").name == "Test board Relay"
