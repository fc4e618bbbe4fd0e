"""The entity kinds beyond the first five (PROTOCOL §7: number, select, text_sensor,
event, colour lights, fan, cover) and the device's own health entities, each through
the real relay, the real firmware and HA's own services: service call → pins,
device → state, and a physical button's presses driving an automation."""

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

from testbed.firmware import HEALTH, MORE_KINDS, DeviceProcess
from testbed.ha_flows import HA_DEVICE_ENTITIES, pair, setup_account, wait_for
from testbed.relay import ProxiedRelay

from .conftest import run_in_thread

pytestmark = pytest.mark.micropython  # the real firmware, through the real relay

RELAY = {"entity_id": "switch.test_board_relay"}
NUMBER = "number.test_board_fan_speed"
SELECT = "select.test_board_status_colour"
TEXT = "sensor.test_board_address"
EVENT = "event.test_board_wall_button"
MOOD = "light.test_board_mood_light"  # rgb on pins 17, 18, 19
DESK = "light.test_board_desk_lamp"  # color_temp: warm 20, cold 21, 2700…6500 K
VENT = "fan.test_board_vent"  # speed on 22, direction on 27
BLIND = "cover.test_board_blind"  # open 28, close 29, 2 s each way
FULL = 65535  # a PWM pin's full duty in the simulation


@pytest.fixture
async def device(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> DeviceProcess:
    """The test board with one entity of every kind, paired with HA."""
    dev = make_device(entities=[*HA_DEVICE_ENTITIES, *MORE_KINDS])
    await pair(hass, await setup_account(hass, relay), dev)
    return dev


async def test_number_sets_the_duty_and_reports_the_snapped_value(
    hass: HomeAssistant, device: DeviceProcess
) -> None:
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
    hass: HomeAssistant, device: DeviceProcess
) -> None:
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
    hass: HomeAssistant, device: DeviceProcess
) -> None:
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
    hass: HomeAssistant, device: DeviceProcess
) -> None:
    """single / double / long presses at the pin arrive as HA's button event types; an
    automation on the event entity turns the relay on for a double press and off for
    a long one, as a user would write it."""
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


async def _call(
    hass: HomeAssistant, domain: str, service: str, entity: str, **data: object
) -> None:
    await hass.services.async_call(domain, service, {ATTR_ENTITY_ID: entity, **data}, blocking=True)


async def test_rgb_light_mixes_its_channels(hass: HomeAssistant, device: DeviceProcess) -> None:
    state = hass.states.get(MOOD)
    assert state.state == STATE_OFF
    assert state.attributes["supported_color_modes"] == ["rgb"]

    await _call(hass, "light", "turn_on", MOOD, rgb_color=[255, 0, 51], brightness=255)
    pins = await device.pins()
    assert (pins["17"], pins["18"], pins["19"]) == (FULL, 0, 51 * 257)
    state = hass.states.get(MOOD)
    assert (state.state, state.attributes["color_mode"]) == (STATE_ON, "rgb")
    assert state.attributes["rgb_color"] == (255, 0, 51)
    # Brightness scales every channel; the colour stays.
    await _call(hass, "light", "turn_on", MOOD, brightness=128)
    pins = await device.pins()
    assert (pins["17"], pins["18"]) == (128 * 257, 0)
    assert abs(pins["19"] - 0.2 * 128 * 257) <= 1
    assert hass.states.get(MOOD).attributes["rgb_color"] == (255, 0, 51)
    await _call(hass, "light", "turn_off", MOOD)
    pins = await device.pins()
    assert (pins["17"], pins["18"], pins["19"]) == (0, 0, 0)
    assert hass.states.get(MOOD).state == STATE_OFF


async def test_colour_temperature_light_splits_warm_and_cold(
    hass: HomeAssistant, device: DeviceProcess
) -> None:
    state = hass.states.get(DESK)
    assert state.attributes["supported_color_modes"] == ["color_temp"]
    assert state.attributes["min_color_temp_kelvin"] == 2700
    assert state.attributes["max_color_temp_kelvin"] == 6500

    await _call(hass, "light", "turn_on", DESK, color_temp_kelvin=2700, brightness=255)
    pins = await device.pins()
    assert (pins["20"], pins["21"]) == (FULL, 0)
    await _call(hass, "light", "turn_on", DESK, color_temp_kelvin=6500)
    pins = await device.pins()
    assert (pins["20"], pins["21"]) == (0, FULL)
    # Half-way between the ends: half the brightness on each channel.
    await _call(hass, "light", "turn_on", DESK, color_temp_kelvin=4600, brightness=102)
    pins = await device.pins()
    assert abs(pins["20"] - 51 * 257) <= 1
    assert abs(pins["21"] - 51 * 257) <= 1
    state = hass.states.get(DESK)
    assert (state.attributes["color_mode"], state.attributes["color_temp_kelvin"]) == (
        "color_temp",
        4600,
    )
    # Outside the lamp's range: HA keeps to min…max, the device never sees 9000 K.
    await _call(hass, "light", "turn_on", DESK, color_temp_kelvin=9000)
    assert hass.states.get(DESK).attributes["color_temp_kelvin"] == 6500


async def test_fan_speed_and_direction(hass: HomeAssistant, device: DeviceProcess) -> None:
    state = hass.states.get(VENT)
    assert state.state == STATE_OFF
    assert state.attributes["percentage"] == 0

    await _call(hass, "fan", "turn_on", VENT, percentage=40)
    assert (await device.pins())["22"] == round(0.4 * FULL)
    state = hass.states.get(VENT)
    assert (state.state, state.attributes["percentage"]) == (STATE_ON, 40)
    await _call(hass, "fan", "set_direction", VENT, direction="reverse")
    assert (await device.pins())["27"] == 1
    assert hass.states.get(VENT).attributes["direction"] == "reverse"
    await _call(hass, "fan", "set_percentage", VENT, percentage=0)
    assert (await device.pins())["22"] == 0
    assert hass.states.get(VENT).state == STATE_OFF
    # On again without a speed: the one it had.
    await _call(hass, "fan", "turn_on", VENT)
    assert (await device.pins())["22"] == round(0.4 * FULL)
    assert hass.states.get(VENT).attributes["percentage"] == 40


async def test_cover_travels_by_time_and_stops_at_its_target(
    hass: HomeAssistant, device: DeviceProcess
) -> None:
    # First boot: the device does not know where the blind is.
    state = hass.states.get(BLIND)
    assert state.state == "unknown"
    assert state.attributes["device_class"] == "blind"
    with pytest.raises(HomeAssistantError, match="open or close it fully once"):
        await _call(hass, "cover", "set_cover_position", BLIND, position=50)
    pins = await device.pins()
    assert (pins["28"], pins["29"]) == (0, 0)

    await _call(hass, "cover", "open_cover", BLIND)
    await wait_for(lambda: hass.states.get(BLIND).state == "opening", 5)
    assert (await device.pins())["28"] == 1
    # A full open run from an unknown position: the travel time, then fully open.
    await wait_for(lambda: hass.states.get(BLIND).state == "open", 10)
    assert hass.states.get(BLIND).attributes["current_position"] == 100
    pins = await device.pins()
    assert (pins["28"], pins["29"]) == (0, 0)

    await _call(hass, "cover", "set_cover_position", BLIND, position=50)
    await wait_for(lambda: hass.states.get(BLIND).state == "closing", 5)
    assert (await device.pins())["29"] == 1
    # Stopped part-way: open, no longer at the top.
    await wait_for(lambda: hass.states.get(BLIND).state == "open"
                   and hass.states.get(BLIND).attributes["current_position"] < 60, 10)  # fmt: skip
    assert abs(hass.states.get(BLIND).attributes["current_position"] - 50) <= 5
    pins = await device.pins()
    assert (pins["28"], pins["29"]) == (0, 0)

    # Stop while closing: it stays part-way, both outputs off.
    await _call(hass, "cover", "close_cover", BLIND)
    await asyncio.sleep(0.4)
    await _call(hass, "cover", "stop_cover", BLIND)
    await wait_for(lambda: hass.states.get(BLIND).state == "open", 5)
    position = hass.states.get(BLIND).attributes["current_position"]
    assert 10 <= position < 50
    pins = await device.pins()
    assert (pins["28"], pins["29"]) == (0, 0)


async def test_health_entities_are_diagnostic(
    hass: HomeAssistant, relay: ProxiedRelay, make_device: Callable[..., DeviceProcess]
) -> None:
    """Uptime, free heap, reconnects, Wi-Fi signal and the last restart reason: all
    diagnostic; the ones that change often are disabled until the user enables them."""
    device = make_device(entities=[*HA_DEVICE_ENTITIES, *HEALTH])
    entry = await setup_account(hass, relay)
    await pair(hass, entry, device)
    registry = er.async_get(hass)
    ids = {
        key: f"sensor.test_board_{name}"
        for key, name in (("uptime", "uptime"), ("free_heap", "free_heap"),
                          ("reconnects", "reconnects"), ("wifi_signal", "wi_fi_signal"),
                          ("restart_reason", "last_restart"))
    }  # fmt: skip
    entries = {key: registry.async_get(entity_id) for key, entity_id in ids.items()}
    assert all(entries.values()), entries
    assert {e.entity_category for e in entries.values()} == {er.EntityCategory.DIAGNOSTIC}
    disabled = {key for key, e in entries.items() if e.disabled_by is not None}
    assert disabled == {"uptime", "free_heap", "wifi_signal"}
    assert entries["uptime"].original_device_class == "duration"
    assert entries["wifi_signal"].original_device_class == "signal_strength"
    assert entries["wifi_signal"].unit_of_measurement == "dBm"
    assert hass.states.get(ids["reconnects"]).state == "0"
    assert hass.states.get(ids["restart_reason"]).state not in ("", "unknown", "unavailable")

    # The user enables the disabled ones; HA reloads the entry and they report.
    for key in disabled:
        registry.async_update_entity(ids[key], disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: hass.states.get(ids["wifi_signal"]) is not None
                   and hass.states.get(ids["wifi_signal"]).state == "-60")  # fmt: skip
    assert int(hass.states.get(ids["free_heap"]).state) > 0
    first = float(hass.states.get(ids["uptime"]).state)
    await device.set_pin("rssi", -71)
    await wait_for(lambda: hass.states.get(ids["wifi_signal"]).state == "-71")
    await wait_for(lambda: float(hass.states.get(ids["uptime"]).state) > first)

    # A relay restart: the device reconnects, and counts it.
    run_in_thread(relay.restart)
    await wait_for(lambda: hass.states.get(ids["reconnects"]).state == "1", 60)
