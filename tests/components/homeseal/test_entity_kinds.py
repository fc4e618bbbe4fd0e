"""The entity kinds beyond the first five (PROTOCOL §7: number, select, text_sensor,
event), each through the real relay, the real firmware and HA's own services:
service call → pin, pin → state, and a physical button's presses driving an
automation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from homeassistant.components.event import ATTR_EVENT_TYPE
from homeassistant.const import ATTR_ENTITY_ID, EVENT_STATE_CHANGED, STATE_OFF, STATE_ON
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component

from testbed.firmware import MORE_KINDS, DeviceProcess
from testbed.ha_flows import HA_DEVICE_ENTITIES, pair, setup_account, wait_for
from testbed.relay import ProxiedRelay

pytestmark = pytest.mark.micropython  # the real firmware, through the real relay

RELAY = {"entity_id": "switch.test_board_relay"}
NUMBER = "number.test_board_fan_speed"
SELECT = "select.test_board_status_colour"
TEXT = "sensor.test_board_address"
EVENT = "event.test_board_wall_button"


@pytest.fixture
def device(make_device: Callable[..., DeviceProcess]) -> DeviceProcess:
    return make_device(entities=[*HA_DEVICE_ENTITIES, *MORE_KINDS])


async def test_number_sets_the_duty_and_reports_the_snapped_value(
    hass: HomeAssistant, relay: ProxiedRelay, device: DeviceProcess
) -> None:
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    state = hass.states.get(NUMBER)
    assert state.state == "0"
    assert state.attributes["min"] == 0
    assert state.attributes["max"] == 100
    assert state.attributes["step"] == 5
    assert state.attributes["mode"] == "slider"
    assert state.attributes["unit_of_measurement"] == "%"
    assert (await device.pins())["12"] == 0

    await hass.services.async_call(
        "number", "set_value", {ATTR_ENTITY_ID: NUMBER, "value": 40}, blocking=True
    )
    assert (await device.pins())["12"] == round(0.4 * 65535)
    assert float(hass.states.get(NUMBER).state) == 40
    # Between steps: the device keeps the nearest step and says so in its state push.
    await hass.services.async_call(
        "number", "set_value", {ATTR_ENTITY_ID: NUMBER, "value": 62}, blocking=True
    )
    await wait_for(lambda: float(hass.states.get(NUMBER).state) == 60)
    assert (await device.pins())["12"] == round(0.6 * 65535)
    # HA refuses a value outside min…max before anything is sent.
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            "number", "set_value", {ATTR_ENTITY_ID: NUMBER, "value": 150}, blocking=True
        )
    assert (await device.pins())["12"] == round(0.6 * 65535)


async def test_select_drives_one_output_per_option(
    hass: HomeAssistant, relay: ProxiedRelay, device: DeviceProcess
) -> None:
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    state = hass.states.get(SELECT)
    assert state.attributes["options"] == ["red", "green", "blue"]
    assert state.state == "red"
    pins = await device.pins()
    assert (pins["13"], pins["14"], pins["15"]) == (1, 0, 0)

    await hass.services.async_call(
        "select", "select_option", {ATTR_ENTITY_ID: SELECT, "option": "blue"}, blocking=True
    )
    pins = await device.pins()
    assert (pins["13"], pins["14"], pins["15"]) == (0, 0, 1)
    assert hass.states.get(SELECT).state == "blue"
    with pytest.raises((ServiceValidationError, HomeAssistantError)):
        await hass.services.async_call(
            "select", "select_option", {ATTR_ENTITY_ID: SELECT, "option": "x"}, blocking=True
        )
    assert hass.states.get(SELECT).state == "blue"


async def test_text_sensor_reports_the_device_string(
    hass: HomeAssistant, relay: ProxiedRelay, device: DeviceProcess
) -> None:
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    assert hass.states.get(TEXT).state == "127.0.0.1"
    assert er.async_get(hass).async_get(TEXT).entity_category == "diagnostic"
    await device.set_pin("ip", "192.168.1.77")
    await wait_for(lambda: hass.states.get(TEXT).state == "192.168.1.77")


async def _press(device: DeviceProcess, hold: float) -> None:
    """Press the wall button (pin 16, pulled up: pressed is 0) for `hold` seconds."""
    await device.set_pin("16", 0)
    await asyncio.sleep(hold)
    await device.set_pin("16", 1)


async def test_event_presses_drive_an_automation(
    hass: HomeAssistant, relay: ProxiedRelay, device: DeviceProcess
) -> None:
    """single / double / long presses at the pin arrive as HA's button event types; an
    automation on the event entity turns the relay on for a double press and off for
    a long one, as a user would write it."""
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    state = hass.states.get(EVENT)
    assert state.attributes["device_class"] == "button"
    assert state.attributes["event_types"] == ["press_end", "multi_press_end", "long_press_start"]
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "triggers": [{"trigger": "state", "entity_id": EVENT}],
                    "conditions": [
                        "{{ trigger.to_state.attributes.event_type == 'multi_press_end' }}"
                    ],
                    "actions": [
                        {
                            "action": "switch.turn_on",
                            "target": {"entity_id": "switch.test_board_relay"},
                        }
                    ],
                },
                {
                    "triggers": [{"trigger": "state", "entity_id": EVENT}],
                    "conditions": [
                        "{{ trigger.to_state.attributes.event_type == 'long_press_start' }}"
                    ],
                    "actions": [
                        {
                            "action": "switch.turn_off",
                            "target": {"entity_id": "switch.test_board_relay"},
                        }
                    ],
                },
            ]
        },
    )
    seen: list[tuple[str, int | None]] = []

    @callback
    def record(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if (
            event.data["entity_id"] == EVENT
            and new is not None
            and ATTR_EVENT_TYPE in new.attributes
        ):
            seen.append((new.attributes[ATTR_EVENT_TYPE], new.attributes.get("multi_press_count")))

    hass.bus.async_listen(EVENT_STATE_CHANGED, record)

    await _press(device, 0.1)
    await wait_for(lambda: len(seen) == 1)
    assert seen == [("press_end", None)]
    assert hass.states.get("switch.test_board_relay").state == STATE_OFF

    await _press(device, 0.06)
    await asyncio.sleep(0.08)
    await _press(device, 0.06)
    await wait_for(lambda: len(seen) == 2)
    assert seen[1] == ("multi_press_end", 2)
    await wait_for(lambda: hass.states.get("switch.test_board_relay").state == STATE_ON)
    assert (await device.pins())["2"] == 1

    # Long: sent while still held, and the release sends nothing.
    await device.set_pin("16", 0)
    await wait_for(lambda: len(seen) == 3)
    assert seen[2] == ("long_press_start", None)
    await device.set_pin("16", 1)
    await wait_for(lambda: hass.states.get("switch.test_board_relay").state == STATE_OFF)
    assert (await device.pins())["2"] == 0
    await asyncio.sleep(0.5)  # past the double-press window: nothing more came
    assert len(seen) == 3
