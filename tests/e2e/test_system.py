"""The whole system end to end: a real relay, the firmware on the MicroPython unix
port and a real Home Assistant, driven only through HA's REST and websocket APIs.

The module shares one system (conftest.py); the `system` fixture has already
onboarded Home Assistant, added the relay account through the config flow and
paired the device through the Add-device flow. Each test leaves everything up.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from testbed.hass import ServiceError
from testbed.paths import ROOT
from testbed.process import TestbedError, wait_until
from testbed.system import (
    BUTTON_PIN,
    DEVICE_ENTITIES,
    DOOR_PIN,
    LIGHT_PIN,
    LONG_PRESS_S,
    PAIRING_BUTTON,
    SWITCH_PIN,
    TEMP_PIN,
    System,
    demo_device,
)

pytestmark = [pytest.mark.e2e, pytest.mark.micropython]

RECOVERY_S = 30  # the issue's bound for coming back after a relay or device restart


def wait_pin(system: System, pin: int, value: int, timeout: float = 15) -> None:
    wait_until(lambda: system.pins().get(str(pin)) == value, timeout, f"pin {pin} == {value}")


def wait_all(system: System, entities: dict[str, str], state: str, timeout: float) -> None:
    def done() -> bool:
        return all(
            (s := system.hass.state(e)) is not None and s["state"] == state
            for e in entities.values()
        )

    wait_until(done, timeout, f"every entity to be {state}")


# ---------------------------------------------------------------- set-up through the APIs


def test_owner_logs_in_with_the_onboarded_password(system: System) -> None:
    assert system.hass.login("owner", "e2e owner password") == 200
    assert system.hass.login("owner", "not the password") == 401


def test_account_entry_and_paired_device(system: System, entities: dict[str, str]) -> None:
    hass = system.hass
    [entry] = hass.entries()
    assert entry["entry_id"] == system.entry_id
    assert entry["state"] == "loaded"
    [sub] = hass.subentries(system.entry_id)
    assert sub["subentry_type"] == "device"
    assert sub["unique_id"] == system.device_id

    devices = hass.ws({"type": "config/device_registry/list"})
    [device] = [d for d in devices if ["homeseal", system.device_id] in d["identifiers"]]
    assert device["name"] == "Demo device"
    assert device["model"] == "homeseal-sim"

    assert set(entities) == {e["key"] for e in DEVICE_ENTITIES}
    domains = {key: entity_id.split(".")[0] for key, entity_id in entities.items()}
    assert domains == {e["key"]: e["kind"] for e in DEVICE_ENTITIES}


def test_config_flow_refuses_untrusted_relay_and_bad_credentials(system: System) -> None:
    hass, relay = system.hass, system.relay
    # Without the relay's certificate as custom CA, TLS verification must fail.
    result = hass.add_account(relay.base, "e2esecond", "an e2e password 1", create=True)
    assert result["type"] == "form"
    assert result["errors"] == {"base": "tls_not_trusted"}
    # Signing in to an account that does not exist.
    result = hass.add_account(
        relay.base, "e2enobody", "an e2e password 2", ca_pem=system.ca.read_text(), create=False
    )
    assert result["type"] == "form"
    assert result["errors"] == {"base": "invalid_auth"}
    # The account already configured is refused before any sign-in.
    result = hass.add_account(
        relay.base,
        system.info["relay_user"],
        system.info["relay_password"],
        ca_pem=system.ca.read_text(),
        create=False,
    )
    assert result["type"] == "abort"
    assert result["reason"] == "already_configured"
    assert len(hass.entries()) == 1


def test_add_device_flow_errors(system: System) -> None:
    hass = system.hass
    result = hass.pair_device(system.entry_id, {"setup_payload": "HS1:not-a-device"})
    assert result["type"] == "form"
    assert result["errors"] == {"setup_payload": "invalid_payload"}

    prov = system.device.provisioned
    assert prov is not None
    result = hass.pair_device(system.entry_id, {"setup_payload": prov.qr_payload})
    assert result["type"] == "abort"
    assert result["reason"] == "already_configured"

    # A provisioned device that never came online: the flow says so.
    other = demo_device(system.dir / "offline-device", system.relay.device_url, None)
    offline = other.provision()
    result = hass.pair_device(system.entry_id, {"setup_payload": offline.qr_payload})
    assert result["type"] == "form"
    assert result["errors"] == {"base": "device_offline"}
    assert len(hass.subentries(system.entry_id)) == 1


# ---------------------------------------------------------------- every entity, both ways


def test_switch(system: System, entities: dict[str, str]) -> None:
    hass, switch = system.hass, entities["heater"]
    hass.call("switch", "turn_on", {"entity_id": switch})
    wait_pin(system, SWITCH_PIN, 1)
    hass.wait_state(switch, "on")
    hass.call("switch", "turn_off", {"entity_id": switch})
    wait_pin(system, SWITCH_PIN, 0)
    hass.wait_state(switch, "off")


def test_light(system: System, entities: dict[str, str]) -> None:
    hass, light = system.hass, entities["lamp"]
    hass.call("light", "turn_on", {"entity_id": light, "brightness": 128})
    wait_pin(system, LIGHT_PIN, 128 * 257)  # 8-bit level → 16-bit PWM duty
    hass.wait_state(light, lambda s: s["state"] == "on" and s["attributes"]["brightness"] == 128)
    hass.call("light", "turn_off", {"entity_id": light})
    wait_pin(system, LIGHT_PIN, 0)
    hass.wait_state(light, "off")
    # turn_on without a brightness restores the last level.
    hass.call("light", "turn_on", {"entity_id": light})
    wait_pin(system, LIGHT_PIN, 128 * 257)
    hass.wait_state(light, lambda s: s["state"] == "on" and s["attributes"]["brightness"] == 128)
    hass.call("light", "turn_off", {"entity_id": light})
    wait_pin(system, LIGHT_PIN, 0)


def test_temperature_sensor(system: System, entities: dict[str, str]) -> None:
    hass, sensor = system.hass, entities["temperature"]
    system.set_temperature(23.4)
    s = hass.wait_state(sensor, "23.4")
    assert s["attributes"]["unit_of_measurement"] == "°C"
    assert s["attributes"]["device_class"] == "temperature"
    system.set_pin(TEMP_PIN, 1850)
    hass.wait_state(sensor, "18.5")


def test_door_contact(system: System, entities: dict[str, str]) -> None:
    hass, door = system.hass, entities["door"]
    system.set_door(True)
    s = hass.wait_state(door, "on")
    assert s["attributes"]["device_class"] == "door"
    system.set_pin(DOOR_PIN, 0)
    hass.wait_state(door, "off")


def _demo(system: System, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.demo", "--state-dir", str(system.dir), *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_command_flips_the_door(system: System, entities: dict[str, str]) -> None:
    """`scripts/demo door open|closed` (tools.demo), as the demo's banner tells a user."""
    for what, state in (("open", "on"), ("closed", "off")):
        proc = _demo(system, "door", what)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"door contact: {what}"
        system.hass.wait_state(entities["door"], state)
    proc = _demo(system, "door", "ajar")
    assert proc.returncode == 2
    assert "usage" in proc.stderr


def test_demo_command_holds_the_pairing_button(system: System) -> None:
    """`scripts/demo button S` presses the device's pairing button for S seconds and
    releases it; what is not a duration is answered with the usage line."""
    button = str(PAIRING_BUTTON["pin"])
    proc = _demo(system, "button", "0.3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "holding the pairing button for 0.3 s …",
        f"released: too short to do anything (hold {LONG_PRESS_S:g} s or more)",
    ]
    assert system.pins()[button] == 1  # released: the pull-up reads high again
    for bad in (["button", "long"], ["button", "-1"], ["button", "nan"], ["temperature", "warm"]):
        proc = _demo(system, *bad)
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)
        assert "usage" in proc.stderr
        assert "Traceback" not in proc.stderr
    proc = _demo(system, "temperature", "-40")
    assert proc.returncode == 2
    assert "reads 0 to 655.35" in proc.stderr


def test_button(system: System, entities: dict[str, str]) -> None:
    hass, button = system.hass, entities["bell"]
    before = system.pulses().get(str(BUTTON_PIN), 0)
    hass.call("button", "press", {"entity_id": button})
    wait_until(
        lambda: system.pulses().get(str(BUTTON_PIN), 0) == before + 1,
        15,
        "one pulse on the button's pin",
    )
    hass.wait_state(button, lambda s: s["state"] not in ("unknown", "unavailable"))
    wait_pin(system, BUTTON_PIN, 0)  # momentary: released after pulse_ms


# ---------------------------------------------------------------- automation


def test_automation_door_opens_lamp(system: System, entities: dict[str, str]) -> None:
    hass = system.hass
    door, light = entities["door"], entities["lamp"]
    system.set_door(False)
    hass.wait_state(door, "off")
    hass.call("light", "turn_off", {"entity_id": light})
    wait_pin(system, LIGHT_PIN, 0)
    hass.create_automation(
        "e2e_door_lamp",
        {
            "alias": "Door opens lamp",
            "triggers": [{"trigger": "state", "entity_id": door, "to": "on"}],
            "actions": [
                {
                    "action": "light.turn_on",
                    "target": {"entity_id": light},
                    "data": {"brightness": 200},
                }
            ],
            "mode": "single",
        },
    )
    try:
        hass.wait_state("automation.door_opens_lamp", "on")
        system.set_door(True)
        wait_pin(system, LIGHT_PIN, 200 * 257)
        hass.wait_state(
            light, lambda s: s["state"] == "on" and s["attributes"]["brightness"] == 200
        )
        s = hass.state("automation.door_opens_lamp")
        assert s is not None
        assert s["attributes"]["last_triggered"] is not None
    finally:
        hass.rest("DELETE", "/api/config/automation/config/e2e_door_lamp")
        system.set_door(False)
        hass.call("light", "turn_off", {"entity_id": light})
    wait_pin(system, LIGHT_PIN, 0)


# ---------------------------------------------------------------- reload and restarts


def _round_trip(system: System, switch: str) -> None:
    """Switch on and off through HA; the pin must follow, not only HA's state."""
    for action, level in (("turn_on", 1), ("turn_off", 0)):
        system.hass.call("switch", action, {"entity_id": switch})
        try:
            wait_pin(system, SWITCH_PIN, level)
        except TestbedError as err:
            state = system.hass.state(switch)
            raise AssertionError(
                f"switch {action}: HA answered the service call and shows "
                f"{state and state['state']!r}, but the device's pin stayed "
                f"{1 - level}: the command did not run on the device ({err})"
            ) from None
        system.hass.wait_state(switch, "on" if level else "off")


def test_reload_entry(system: System, entities: dict[str, str]) -> None:
    subentries = system.hass.subentries(system.entry_id)
    system.hass.reload_entry(system.entry_id)
    system.hass.wait_entry_state(system.entry_id)
    assert system.wait_entities_available(RECOVERY_S) == entities
    assert system.hass.subentries(system.entry_id) == subentries
    _round_trip(system, entities["heater"])


def test_device_restart(system: System, entities: dict[str, str]) -> None:
    switch = entities["heater"]
    system.device.stop()
    try:
        wait_all(system, entities, "unavailable", RECOVERY_S)
        # HA itself does not hand a service call to an unavailable entity; what
        # matters here is that nothing is queued and replayed after recovery.
        system.hass.call_ws("switch", "turn_on", {"entity_id": switch})
    finally:
        t0 = time.monotonic()
        system.device.start()
    assert system.wait_entities_available(RECOVERY_S) == entities
    assert time.monotonic() - t0 < RECOVERY_S
    time.sleep(1)
    assert system.pins()[str(SWITCH_PIN)] == 0
    assert system.hass.wait_state(switch, "off")
    # A restarted device starts from its pins' power-on levels: the door input
    # reads pulled up (open) until the contact is closed again.
    system.set_door(False)
    system.hass.wait_state(entities["door"], "off")
    _round_trip(system, switch)


def test_command_during_partition_fails_and_is_not_run_later(
    system: System, entities: dict[str, str]
) -> None:
    """The device's link hangs (the device frozen, its TCP connection to the relay
    open): HA still believes the device is online, so the command goes out, and must
    come back as an error."""
    switch = entities["heater"]
    system.device.freeze()
    try:
        t0 = time.monotonic()
        with pytest.raises(ServiceError) as err:
            system.hass.call_ws("switch", "turn_on", {"entity_id": switch})
        assert err.value.error.get("translation_key") in ("command_timeout", "device_offline"), (
            err.value.error
        )
        assert time.monotonic() - t0 < 20
        assert system.hass.state(switch)["state"] != "on"  # type: ignore[index]
    finally:
        # The link breaks: the frame in flight, unread in the frozen device's socket,
        # is lost with it.
        system.device.kill()
        system.device.start(wait_for="control socket")
    assert system.wait_entities_available(RECOVERY_S) == entities
    time.sleep(1)
    assert system.pins()[str(SWITCH_PIN)] == 0
    system.hass.wait_state(switch, "off")
    # A restarted device reads its door input pulled up (open) until the contact
    # closes it again.
    system.set_door(False)
    system.hass.wait_state(entities["door"], "off")
    _round_trip(system, switch)


def test_relay_restart(system: System, entities: dict[str, str]) -> None:
    system.relay.stop()
    try:
        wait_all(system, entities, "unavailable", RECOVERY_S)
    finally:
        t0 = time.monotonic()
        system.relay.start()
    assert system.wait_entities_available(RECOVERY_S) == entities
    assert time.monotonic() - t0 < RECOVERY_S
    _round_trip(system, entities["heater"])


def test_home_assistant_restart_needs_no_pairing(system: System, entities: dict[str, str]) -> None:
    subentries = system.hass.subentries(system.entry_id)
    paired_logs = system.device.output().count("paired with controller")
    since = system.device.log_size()  # whatever ran before in this module is not ours
    system.hass.stop()
    system.hass.start()
    assert system.wait_entities_available(60) == entities
    assert system.hass.subentries(system.entry_id) == subentries
    # The device kept its pin of the controller: no pairing happened again.
    assert system.device.output().count("paired with controller") == paired_logs
    assert "pairing window open" not in system.device.output(since)
    system.set_temperature(19.5)
    system.hass.wait_state(entities["temperature"], "19.5")
    _round_trip(system, entities["heater"])
