"""Pairing, entities, commands and state with the real relay and the real firmware."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from homeassistant.components.binary_sensor import BinarySensorDeviceClass
from homeassistant.components.light import ATTR_BRIGHTNESS
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from custom_components.homeseal import diagnostics
from custom_components.homeseal.client.envelope import Frame, FrameType
from custom_components.homeseal.client.session import encode_reset
from custom_components.homeseal.const import DOMAIN
from custom_components.homeseal.entity import enum_or_none

from .common import entity_ids, pair, setup_account, wait_available, wait_for
from .conftest import RelayProcess, SimDevice, run_in_thread


async def test_pair_and_control(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
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
    dev = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, device.device_id)})
    assert dev is not None
    assert dev.model == "sim-1"
    assert dev.sw_version
    assert dev.name == "Test board"

    assert hass.states.get("switch.test_board_relay").state == STATE_OFF
    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.test_board_relay"}, blocking=True
    )
    assert (await device.pins())["pins"]["2"] == 1
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
    assert (await device.pins())["pins"]["3"] == 128 * 257


async def test_sensors_button_and_push_updates(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
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
    await device.control({"op": "set", "pin": "4", "value": 0})
    await wait_for(lambda: hass.states.get("binary_sensor.test_board_door").state == STATE_OFF)
    await device.control({"op": "set", "pin": "internal_temp", "value": 31.5})
    await wait_for(lambda: hass.states.get("sensor.test_board_temperature").state == "31.5")

    before = (await device.pins())["pulses"]["5"]
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: "button.test_board_bell"}, blocking=True
    )
    assert (await device.pins())["pulses"]["5"] == before + 1

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
    assert (await device.pins())["pins"]["2"] == 0
    await hass.services.async_call(
        "light", "turn_on", {ATTR_ENTITY_ID: "light.test_board_lamp"}, blocking=True
    )
    await wait_for(lambda: hass.states.get("light.test_board_lamp").state == STATE_ON)


async def test_availability_on_device_and_relay_loss(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
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
    assert (await device.pins())["pins"]["2"] == 1


async def test_command_errors(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    link = next(iter(entry.runtime_data.hub.links.values()))
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
    run_in_thread(lambda: device.signal(signal.SIGSTOP))
    try:
        with pytest.raises(HomeAssistantError) as err:
            await hass.services.async_call(
                "switch", "turn_on", {ATTR_ENTITY_ID: "switch.test_board_relay"}, blocking=True
            )
        assert err.value.translation_key == "command_timeout"
    finally:
        run_in_thread(lambda: device.signal(signal.SIGCONT))

    # Offline: the device is gone; a command that still reaches the entity is refused.
    run_in_thread(device.stop)
    await wait_for(lambda: not link.available)
    with pytest.raises(HomeAssistantError) as err:
        await switch.async_turn_on()
    assert err.value.translation_key == "device_offline"


async def test_key_mismatch_raises_repair(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    """A RESET claiming another static key for a paired device id (what a compromised relay
    or an impersonator would send) is refused and surfaced, never accepted."""
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    ids = entity_ids(hass, subentry_id)
    hub = entry.runtime_data.hub
    link = next(iter(hub.links.values()))
    pinned = link.device_static_pub
    other_key = X25519PrivateKey.generate().public_key().public_bytes_raw()
    hub._on_frame(  # as the (untrusted) relay would deliver it
        Frame(FrameType.SESSION, link.device_id, encode_reset(2, other_key))
    )
    issue_id = f"key_mismatch_{device.device_id.replace('-', '')}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders["device_id"] == device.device_id
    assert link.device_static_pub == pinned  # never replaced
    await wait_available(hass, ids, available=False)
    switch = hass.data["entity_components"]["switch"].get_entity("switch.test_board_relay")
    with pytest.raises(HomeAssistantError) as err:
        await switch.async_turn_on()
    assert err.value.translation_key == "key_mismatch"

    # RESET is unauthenticated: a forged one must not cut off the genuine device. A
    # session with the pinned key (only the real device can open one) clears the alarm.
    link.presence(True)
    await wait_available(hass, ids, available=True)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert link.device_static_pub == pinned

    # Reported again, the user can choose to remove the device and pair it knowingly.
    hub._on_frame(Frame(FrameType.SESSION, link.device_id, encode_reset(2, other_key)))
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    # The fix flow removes the device so it can be paired again knowingly.
    assert await async_setup_component(hass, "repairs", {})
    manager = repairs_flow_manager(hass)
    assert manager is not None
    flow = await manager.async_init(DOMAIN, data={"issue_id": issue_id})
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"]["device_id"] == device.device_id
    result = await manager.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert subentry_id not in entry.subentries
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_diagnostics_redact_secrets(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    device = make_device()
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    data = await diagnostics.async_get_config_entry_diagnostics(hass, entry)
    text = json.dumps(data, default=str)
    subentry = next(iter(entry.subentries.values()))
    for secret in (
        entry.data["token"],
        entry.data["username"],
        subentry.data["device_key"],
        device.setup_code,
        relay.tls.ca_pem.splitlines()[1],
    ):
        assert secret not in text
    assert data["relay"]["connected"] is True
    assert data["devices"][0]["state"] == "ready"
    assert data["devices"][0]["values"]["lamp"] == {"on": False, "brightness": 255}
    assert data["entry"]["data"]["token"] == "**REDACTED**"

    dev = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, device.device_id)})
    assert dev is not None
    device_data = await diagnostics.async_get_device_diagnostics(hass, entry, dev)
    assert device_data["device"]["device_id"] == device.device_id
    assert device_data["device"]["model"] == "sim-1"
    hub_device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, entry.entry_id)})
    assert hub_device is not None
    assert (await diagnostics.async_get_device_diagnostics(hass, entry, hub_device))[
        "device"
    ] is None


async def test_entities_from_cache_after_restart(
    hass: HomeAssistant, relay: RelayProcess, make_device: Callable[..., SimDevice]
) -> None:
    """After a restart the entities exist (unavailable) before the device is back."""
    device = make_device()
    entry = await setup_account(hass, relay)
    subentry_id = await pair(hass, entry, device)
    ids = entity_ids(hass, subentry_id)
    run_in_thread(device.stop)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    link = next(iter(entry.runtime_data.hub.links.values()))
    assert link.describe is not None
    assert link.describe.name == "Test board"
    await wait_available(hass, ids, available=False)
    run_in_thread(device.start)
    await wait_available(hass, ids)


async def test_bad_cached_describe_is_ignored(
    hass: HomeAssistant, relay: RelayProcess, hass_storage: dict[str, Any]
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
