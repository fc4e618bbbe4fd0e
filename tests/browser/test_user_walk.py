"""A new user's first minutes, in Home Assistant's web UI (see conftest.py): the steps
run in order and share one browser, one Home Assistant and one simulated device.

Each answer the user waits for must come in a bounded time: no spinner that never
stops (the "Add device" flow once showed one for an offline device).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from testbed.browser import HaUi
from testbed.process import wait_until
from testbed.system import (
    BUTTON_PIN,
    DOOR_PIN,
    FACTORY_RESET_S,
    LIGHT_PIN,
    SWITCH_PIN,
    System,
)

from .conftest import OWNER, OWNER_PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.micropython]

RELAY_USER = "browser-user"
RELAY_PASSWORD = "a password for the browser"
ANSWER_S = 10.0  # the longest an error may take to reach the form (pairing runs PBKDF2)


def _wrong(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def _wait_created(ui: HaUi, name_prefix: str, timeout_ms: float = 30_000) -> None:
    """HA's last step of a flow that made a device ("Device created" in 2026.2, "Name
    and assign" later): it offers the new device under the name the flow gave it."""
    name = re.compile("^" + re.escape(name_prefix))
    expect(ui.textbox("Device name")).to_have_value(name, timeout=timeout_ms)
    ui.close_dialog()


def test_login_loads_the_whole_ui(system: System, ui: HaUi, artifacts: Path) -> None:
    ui.login(OWNER, OWNER_PASSWORD)
    ui.wait_loaded()
    ui.goto("/config/integrations/dashboard")
    ui.page.get_by_role("button", name="Add integration").wait_for()
    ui.wait_loaded()
    ui.screenshot(artifacts / "dashboard.png")


def test_create_a_relay_account(system: System, ui: HaUi) -> None:
    ui.start_integration("HomeSeal")
    ui.choose("Create a new account")
    ui.fill("Relay URL", system.relay.base)
    ui.fill("Username", RELAY_USER)
    ui.fill("Password", RELAY_PASSWORD)
    ui.fill("Confirm password", RELAY_PASSWORD + "?")
    ui.expand("Self-hosted relay: TLS trust")
    ui.fill("CA certificate (PEM)", system.ca.read_text())
    ui.submit()
    ui.wait_text("The two passwords differ.")
    # The form kept what was typed, but not the passwords.
    assert ui.field_value("Username") == RELAY_USER
    ui.fill("Password", RELAY_PASSWORD)
    ui.fill("Confirm password", RELAY_PASSWORD)
    ui.submit()
    _wait_created(ui, f"{RELAY_USER} @ localhost")  # the account's device, named after it
    [entry] = system.hass.entries()
    assert entry["state"] == "loaded"
    # Sign in with the same account, as after a reinstall: remove it, then sign in.
    system.hass.rest("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")


def test_sign_in_to_the_relay_account(system: System, ui: HaUi, artifacts: Path) -> None:
    ui.start_integration("HomeSeal")
    ui.choose("Sign in to an existing account")
    ui.fill("Relay URL", system.relay.base)
    ui.fill("Username", RELAY_USER)
    ui.fill("Password", "not the password at all")
    ui.expand("Self-hosted relay: TLS trust")
    ui.fill("CA certificate (PEM)", system.ca.read_text())
    ui.submit()
    ui.wait_text("Invalid authentication")
    ui.fill("Password", RELAY_PASSWORD)
    ui.submit()
    _wait_created(ui, f"{RELAY_USER} @ localhost")
    [entry] = system.hass.entries()
    assert entry["state"] == "loaded"
    system.info["entry_id"] = entry["entry_id"]
    ui.goto("/config/integrations/integration/homeseal")
    ui.page.get_by_role("button", name="Add device").first.wait_for()
    ui.screenshot(artifacts / "integration-page.png")


def _add_device_by_hand(ui: HaUi, device_id: str, code: str) -> float:
    """Open "Add device", type the id and the code, submit; returns when the form was
    submitted (the caller waits for the answer)."""
    ui.goto("/config/integrations/integration/homeseal")
    ui.page.get_by_role("button", name="Add device").first.click()
    ui.choose("Type the device id and the setup code")
    ui.fill("Device id", device_id)
    ui.fill("Setup code", code)
    started = time.monotonic()
    ui.submit()
    return started


@pytest.mark.parametrize(
    ("case", "answer"),
    [
        ("wrong code", "The setup code is wrong. The device allows 19 more attempts"),
        ("trivial code", "A setup code has 8 digits and is not trivial."),
        ("offline device", "The device is not connected to the relay."),
        ("mistyped id", "A device id has 16 characters"),
    ],
)
def test_add_device_errors_come_back_on_the_form(
    system: System, ui: HaUi, artifacts: Path, case: str, answer: str
) -> None:
    prov = system.device.provisioned
    assert prov is not None
    device_id, code = prov.device_id, prov.setup_code.replace("-", "")
    typed = {
        "wrong code": (device_id, _wrong(code)),
        "trivial code": (device_id, "12345678"),
        "offline device": ("mfrg-gzdf-mztw-q2lk", code),
        "mistyped id": (device_id.replace("-", "")[:-1] + "1", code),
    }[case]
    started = _add_device_by_hand(ui, *typed)
    ui.wait_text(answer, timeout_ms=ANSWER_S * 1000)
    took = time.monotonic() - started
    assert took < ANSWER_S
    # The form keeps what was typed (the user corrects a digit, not the label).
    assert ui.field_value("Device id") == typed[0]
    ui.screenshot(artifacts / f"add-device-{case.replace(' ', '-')}.png")
    ui.close_dialog()


def test_add_device_with_the_qr_text(system: System, ui: HaUi, artifacts: Path) -> None:
    prov = system.device.provisioned
    assert prov is not None
    ui.goto("/config/integrations/integration/homeseal")
    ui.page.get_by_role("button", name="Add device").first.click()
    ui.choose("Paste the text of the QR code")
    ui.fill("QR code text", prov.qr_payload)
    ui.submit()
    # Success names the device by the name it gave itself once it has described itself.
    ui.wait_text("Demo device", timeout_ms=60_000)
    ui.close_dialog()
    system.info["device_id"] = prov.device_id
    system.wait_entities_available()
    ui.open_device("Demo device")
    ui.toggle("Heater").wait_for()
    ui.screenshot(artifacts / "device-page.png")


def _pin(system: System, pin: int) -> object:
    return system.pins().get(str(pin))


def test_switch_light_and_button_reach_the_pins(system: System, ui: HaUi) -> None:
    ui.open_device("Demo device")
    ui.flip("Heater")
    wait_until(lambda: _pin(system, SWITCH_PIN) == 1, 10, "the heater pin to go high")
    ui.flip("Heater")
    wait_until(lambda: _pin(system, SWITCH_PIN) == 0, 10, "the heater pin to go low")

    lamp = system.entity_ids()["lamp"]
    ui.flip("Lamp")
    wait_until(lambda: _pin(system, LIGHT_PIN) == 65535, 10, "the lamp at full brightness")
    system.hass.wait_state(lamp, lambda s: s["attributes"].get("brightness") == 255, 10)
    # Brightness from the lamp's own dialog: its slider, moved with the keyboard as a
    # user does it: look at the slider, press a key, look again. The dialog redraws
    # the slider from each state answer, and in 2026.2 an answer can arrive after the
    # next key (the slider jumps back) or swallow it, so a key is pressed only once
    # the slider, HA's state and the lamp agree, and again if it was lost.
    ui.page.get_by_text("Lamp", exact=True).click()
    slider = ui.page.get_by_role("slider", name="Brightness")

    def settled() -> int | None:
        """The brightness in % once the slider, HA's state and the lamp's pin agree."""
        shown = slider.get_attribute("aria-valuenow")
        state = system.hass.state(lamp)
        duty = _pin(system, LIGHT_PIN)
        if shown is None or state is None or not isinstance(duty, int):
            return None
        percent = round((state["attributes"].get("brightness") or 0) / 2.55)
        agree = int(shown) == percent and abs(duty / 65535 - percent / 100) < 0.03
        return percent if agree else None

    slider.press("End")
    for _ in range(20):
        percent = wait_until(settled, 10, "the slider, HA and the lamp to agree")
        if percent == 50:
            break
        slider.press("PageDown" if percent > 50 else "PageUp")
        ui.page.wait_for_timeout(300)  # the answer to this key, before looking again
    else:
        raise AssertionError(f"20 keys did not bring the lamp to 50 % (at {percent} %)")
    duty = _pin(system, LIGHT_PIN)
    assert isinstance(duty, int), duty
    assert 0.4 < duty / 65535 < 0.6, duty  # half brightness
    ui.close_dialog()

    before = system.pulses().get(str(BUTTON_PIN), 0)
    ui.page.get_by_role("button", name="Press").click()
    wait_until(lambda: system.pulses().get(str(BUTTON_PIN), 0) == before + 1, 10, "one bell pulse")


def test_door_contact_shows_in_the_ui(system: System, ui: HaUi) -> None:
    ui.open_device("Demo device")
    ui.wait_shown("Door Closed")
    system.set_door(True)
    started = time.monotonic()
    ui.wait_shown("Door Open", timeout_ms=10_000)
    opened_in = time.monotonic() - started
    system.set_door(False)
    ui.wait_shown("Door Closed", timeout_ms=10_000)
    assert opened_in < 10
    assert _pin(system, DOOR_PIN) == 0


def test_diagnostics_download(system: System, ui: HaUi, tmp_path: Path) -> None:
    ui.open_device("Demo device")
    download = ui.download("Download diagnostics")
    path = tmp_path / "diagnostics.json"
    download.save_as(path)
    data = json.loads(path.read_text())
    device = data["data"]["device"]
    assert device["device_id"] == system.device_id
    assert device["available"] is True
    text = path.read_text()
    prov = system.device.provisioned
    assert prov is not None
    assert prov.setup_code.replace("-", "") not in text
    assert system.info["relay_password"] not in text


def test_a_reset_device_is_reported_and_paired_again(
    system: System, ui: HaUi, artifacts: Path
) -> None:
    """A factory reset (the pairing button held 15 s) makes the device forget HA: HA
    says so in Repairs (after seconds here, minutes for a user), the fix removes the
    device, and it pairs again with the code on its label."""
    prov = system.device.provisioned
    assert prov is not None
    entry_id = system.info["entry_id"]
    system.hold_pairing_button(FACTORY_RESET_S + 1)
    ui.goto("/config/repairs")
    issue = "Demo device no longer recognises this Home Assistant"
    ui.wait_text(issue, timeout_ms=60_000)
    ui.screenshot(artifacts / "repairs.png")
    ui.page.get_by_text(issue).first.click()
    ui.wait_text("factory reset")  # the fix flow's explanation
    ui.screenshot(artifacts / "repair-flow.png")
    ui.submit()
    wait_until(lambda: not system.hass.subentries(entry_id), 30, "the device's removal")
    ui.close_dialog()

    ui.goto("/config/integrations/integration/homeseal")
    ui.page.get_by_role("button", name="Add device").first.click()
    ui.choose("Paste the text of the QR code")
    ui.fill("QR code text", prov.qr_payload)
    ui.submit()
    ui.wait_text("Demo device", timeout_ms=60_000)
    ui.close_dialog()
    system.wait_entities_available()
    ui.open_device("Demo device")
    ui.flip("Heater")
    wait_until(lambda: _pin(system, SWITCH_PIN) == 1, 10, "the heater pin to go high")
