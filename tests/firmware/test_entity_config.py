"""Config errors of the number, select, text_sensor and event kinds, the colour lights,
fans, covers and the health sensors (firmware/README.md "config.json", PROTOCOL.md §7):
each bad field stops the device with one line naming it, as test_identity_config.py
checks for the other fields."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testbed.firmware import TEST_ENTITIES
from tests.support import FIRMWARE, micropython_env, micropython_path

from .test_identity_config import _run_with_config

pytestmark = pytest.mark.micropython

NUMBER = {"key": "fan", "kind": "number", "name": "Fan"}
SELECT = {"key": "mode", "kind": "select", "name": "Mode", "options": ["a", "b", "c"]}
TEXT = {"key": "ip", "kind": "text_sensor", "name": "IP", "category": "diagnostic"}
EVENT = {"key": "wall", "kind": "event", "name": "Wall", "pin": 16}
LIGHT = {"key": "lamp2", "kind": "light", "name": "Lamp 2", "pin": 17}
RGB = {"key": "mood", "kind": "light", "name": "Mood", "color_mode": "rgb", "pins": [17, 18, 19]}
RGBW = {**RGB, "color_mode": "rgbw", "pins": [17, 18, 19, 20]}
CT = {"key": "desk", "kind": "light", "name": "Desk", "color_mode": "color_temp",
      "pins": [20, 21], "min_kelvin": 2700, "max_kelvin": 6500}  # fmt: skip
FAN = {"key": "vent", "kind": "fan", "name": "Vent", "pin": 22, "direction_pin": 27}
COVER = {"key": "blind", "kind": "cover", "name": "Blind", "open_pin": 28, "close_pin": 29,
         "open_time": 2, "close_time": 2}  # fmt: skip
UPTIME = {"key": "up", "kind": "sensor", "name": "Uptime", "source": "uptime"}


def _without(entity: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if k != field}


def _config(entity: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """TEST_ENTITIES (pins 5, 6, 26, 4, 7) and then `entity` with `changes`: entities[6]."""
    return {
        "relay": {"url": "ws://127.0.0.1:9/ws/device"},
        "entities": [dict(e) for e in TEST_ENTITIES] + [{**entity, **changes}],
    }


CONFIG_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("number max not above min", _config(NUMBER, min=10, max=10),
     "entities[6].max: must be greater than min"),
    ("number max not a number", _config(NUMBER, max="high"), "entities[6].max: must be a number"),
    ("number min a bool", _config(NUMBER, min=True), "entities[6].min: must be a number"),
    ("number step zero", _config(NUMBER, step=0), "entities[6].step: must be greater than 0"),
    ("number initial out of range", _config(NUMBER, initial=101),
     "entities[6].initial: must be from min to max"),
    ("number mode", _config(NUMBER, mode="dial"), "entities[6].mode: must be auto, box, slider"),
    ("number unit", _config(NUMBER, unit=""), "entities[6].unit: must be a string"),
    ("number restore on", _config(NUMBER, restore="on"), "entities[6].restore: must be off, last"),
    ("number output", _config(NUMBER, output="dac"),
     "entities[6].output: must be none, pwm, servo"),
    ("number pwm without pin", _config(NUMBER, output="pwm"), "entities[6].pin: is required"),
    ("number pin without output", _config(NUMBER, pin=12),
     "entities[6].pin: only with output pwm or servo"),
    ("number shared pin", _config(NUMBER, output="servo", pin=5),
     "entities[6].pin: pin 5 is already used"),
    ("number pulse_us order", _config(NUMBER, output="servo", pin=12, pulse_us=[2000, 1000]),
     "entities[6].pulse_us: must be [shortest, longest]"),
    ("number pulse_us shape", _config(NUMBER, output="servo", pin=12, pulse_us=1500),
     "entities[6].pulse_us: must be [shortest, longest]"),
    ("number freq", _config(NUMBER, output="pwm", pin=12, freq=0),
     "entities[6].freq: must be an integer"),
    ("number category",
     _config(NUMBER, category="settings"),
     "entities[6].category: must be config or diagnostic for a number"),
    ("select no options", _config({**SELECT, "options": None}),
     "entities[6].options: must be a list of 1 to 16 strings"),
    ("select empty options", _config(SELECT, options=[]),
     "entities[6].options: must be a list of 1 to 16 strings"),
    ("select 17 options", _config(SELECT, options=[f"o{i}" for i in range(17)]),
     "entities[6].options: must be a list of 1 to 16 strings"),
    ("select duplicate option", _config(SELECT, options=["a", "b", "a"]),
     "entities[6].options[2]: duplicate a"),
    ("select long option", _config(SELECT, options=["a", "b" * 33]),
     "entities[6].options[1]: must be a string of 1 to 32 characters"),
    ("select initial", _config(SELECT, initial="d"),
     "entities[6].initial: must be one of the options"),
    ("select restore", _config(SELECT, restore="on"), "entities[6].restore: must be off, last"),
    ("select pins length", _config(SELECT, pins=[12, 13]),
     "entities[6].pins: must list one pin per option"),
    ("select bad pin", _config(SELECT, pins=[12, 13, -1]),
     "entities[6].pins[2]: must be a GPIO number"),
    ("select shared pin", _config(SELECT, pins=[12, 6, 13]),
     "entities[6].pins[1]: pin 6 is already used"),
    ("select repeated pin", _config(SELECT, pins=[12, 13, 12]),
     "entities[6].pins[2]: pin 12 is already used"),
    ("select unknown field", _config(SELECT, pin=12), "entities[6].pin: unknown field"),
    ("text sensor source", _config(TEXT, source="mac"),
     "entities[6].source: must be ip, restart_reason"),
    ("text sensor interval", _config(TEXT, interval=0),
     "entities[6].interval: must be an integer from 1 to 3600"),
    ("text sensor config", _config(TEXT, category="config"),
     "entities[6].category: must be diagnostic for a text_sensor"),
    ("text sensor device class", _config(TEXT, device_class="ip"),
     "entities[6].device_class: unknown field"),
    ("event without pin", _config({**EVENT, "pin": None}), "entities[6].pin: is required"),
    ("event shared pin", _config(EVENT, pin=4), "entities[6].pin: pin 4 is already used"),
    ("event long_ms", _config(EVENT, long_ms=50),
     "entities[6].long_ms: must be an integer from 100 to 10000"),
    ("event double_ms", _config(EVENT, double_ms=2500),
     "entities[6].double_ms: must be an integer from 0 to 2000"),
    ("event debounce_ms", _config(EVENT, debounce_ms=-1),
     "entities[6].debounce_ms: must be an integer"),
    ("event unknown type", _config(EVENT, types=["single", "triple"]),
     "entities[6].types[1]: must be one of single, double, long"),
    ("event no types", _config(EVENT, types=[]), "entities[6].types: must be a list"),
    ("event repeated type", _config(EVENT, types=["long", "long"]),
     "entities[6].types[1]: duplicate long"),
    ("event double without window", _config(EVENT, double_ms=0, types=["single", "double"]),
     "entities[6].types: double needs double_ms greater than 0"),
    ("event config", _config(EVENT, category="config"),
     "entities[6].category: must be diagnostic for an event"),
    # colour lights
    ("light color_mode", _config(RGB, color_mode="hsv"),
     "entities[6].color_mode: must be brightness, rgb, rgbw, color_temp"),
    ("rgb light two pins", _config(RGB, pins=[17, 18]),
     "entities[6].pins: an rgb light needs 3 pins"),
    ("rgb light without pins", _config(_without(RGB, "pins")),
     "entities[6].pins: an rgb light needs 3 pins"),
    ("rgb light pins not a list", _config(RGB, pins=17),
     "entities[6].pins: an rgb light needs 3 pins"),
    ("rgbw light three pins", _config(RGBW, pins=[17, 18, 19]),
     "entities[6].pins: an rgbw light needs 4 pins"),
    ("color_temp light one pin", _config(CT, pins=[20]),
     "entities[6].pins: a color_temp light needs 2 pins"),
    ("rgb light with pin", _config(RGB, pin=23), "entities[6].pin: an rgb light has pins"),
    ("rgb light bad pin", _config(RGB, pins=[17, 18, -1]),
     "entities[6].pins[2]: must be a GPIO number"),
    ("rgb light shared pin", _config(RGB, pins=[17, 5, 19]),
     "entities[6].pins[1]: pin 5 is already used"),
    ("rgb light repeated pin", _config(RGB, pins=[17, 18, 17]),
     "entities[6].pins[2]: pin 17 is already used"),
    ("rgb light kelvin", _config(RGB, min_kelvin=2700),
     "entities[6].min_kelvin: only with color_mode color_temp"),
    ("brightness light pins", _config(LIGHT, pins=[18, 19, 20]),
     "entities[6].pins: only with color_mode rgb, rgbw or color_temp"),
    ("brightness light kelvin", _config(LIGHT, max_kelvin=6500),
     "entities[6].max_kelvin: only with color_mode rgb, rgbw or color_temp"),
    ("brightness light without pin", _config(_without(LIGHT, "pin")),
     "entities[6].pin: is required"),
    ("color_temp light without min_kelvin", _config(_without(CT, "min_kelvin")),
     "entities[6].min_kelvin: is required"),
    ("color_temp light without max_kelvin", _config(_without(CT, "max_kelvin")),
     "entities[6].max_kelvin: is required"),
    ("color_temp light min_kelvin low", _config(CT, min_kelvin=999),
     "entities[6].min_kelvin: must be an integer from 1000 to 20000"),
    ("color_temp light max_kelvin high", _config(CT, max_kelvin=20001),
     "entities[6].max_kelvin: must be an integer from 1000 to 20000"),
    ("color_temp light kelvin float", _config(CT, min_kelvin=2700.5),
     "entities[6].min_kelvin: must be an integer"),
    ("color_temp light kelvin order", _config(CT, min_kelvin=6500, max_kelvin=2700),
     "entities[6].max_kelvin: must be greater than min_kelvin"),
    ("color_temp light equal kelvins", _config(CT, min_kelvin=4000, max_kelvin=4000),
     "entities[6].max_kelvin: must be greater than min_kelvin"),
    ("rgb light restore", _config(RGB, restore="previous"),
     "entities[6].restore: must be off, on, last"),
    ("rgb light freq", _config(RGB, freq=0), "entities[6].freq: must be an integer"),
    ("rgb light inverted", _config(RGB, inverted="yes"),
     "entities[6].inverted: must be true or false"),
    # fans
    ("fan without pin", _config(_without(FAN, "pin")), "entities[6].pin: is required"),
    ("fan bad direction pin", _config(FAN, direction_pin=256),
     "entities[6].direction_pin: must be a GPIO number"),
    ("fan direction pin is its pin", _config(FAN, direction_pin=22),
     "entities[6].direction_pin: pin 22 is already used"),
    ("fan shared direction pin", _config(FAN, direction_pin=5),
     "entities[6].direction_pin: pin 5 is already used"),
    ("fan shared pin", _config(FAN, pin=6), "entities[6].pin: pin 6 is already used"),
    ("fan restore", _config(FAN, restore="previous"),
     "entities[6].restore: must be off, on, last"),
    ("fan freq", _config(FAN, freq="fast"), "entities[6].freq: must be an integer"),
    ("fan inverted", _config(FAN, inverted=1), "entities[6].inverted: must be true or false"),
    ("fan unknown field", _config(FAN, percentage=50), "entities[6].percentage: unknown field"),
    ("fan category", _config(FAN, category="settings"),
     "entities[6].category: must be config or diagnostic for a fan"),
    # covers
    ("cover without open_pin", _config(_without(COVER, "open_pin")),
     "entities[6].open_pin: is required"),
    ("cover without close_pin", _config(_without(COVER, "close_pin")),
     "entities[6].close_pin: is required"),
    ("cover bad open_pin", _config(COVER, open_pin="x" * 17),
     "entities[6].open_pin: must be a GPIO number"),
    ("cover one pin for both", _config(COVER, close_pin=28),
     "entities[6].close_pin: pin 28 is already used"),
    ("cover shared open_pin", _config(COVER, open_pin=7),
     "entities[6].open_pin: pin 7 is already used"),
    ("cover without open_time", _config(_without(COVER, "open_time")),
     "entities[6].open_time: is required"),
    ("cover open_time zero", _config(COVER, open_time=0),
     "entities[6].open_time: must be more than 0"),
    ("cover open_time long", _config(COVER, open_time=601),
     "entities[6].open_time: must be more than 0 and at most 600 seconds"),
    ("cover close_time negative", _config(COVER, close_time=-2),
     "entities[6].close_time: must be more than 0"),
    ("cover close_time string", _config(COVER, close_time="2"),
     "entities[6].close_time: must be a number"),
    ("cover close_time bool", _config(COVER, close_time=True),
     "entities[6].close_time: must be a number"),
    ("cover interlock_ms negative", _config(COVER, interlock_ms=-1),
     "entities[6].interlock_ms: must be an integer from 0 to 10000"),
    ("cover interlock_ms float", _config(COVER, interlock_ms=0.5),
     "entities[6].interlock_ms: must be an integer"),
    ("cover restore on", _config(COVER, restore="on"), "entities[6].restore: must be off, last"),
    ("cover device_class", _config(COVER, device_class=""),
     "entities[6].device_class: must be a string"),
    ("cover inverted", _config(COVER, inverted="no"),
     "entities[6].inverted: must be true or false"),
    ("cover pin", _config(COVER, pin=30), "entities[6].pin: unknown field"),
    ("cover freq", _config(COVER, freq=1000), "entities[6].freq: unknown field"),
    # health sensors
    ("sensor source", _config(UPTIME, source="battery"),
     "entities[6].source: must be adc, internal_temp, uptime, free_heap, reconnects, wifi_signal"),
    ("health sensor pin", _config(UPTIME, pin=30), "entities[6].pin: only with source adc"),
    ("health sensor scale", _config(UPTIME, source="free_heap", scale=0.001),
     "entities[6].scale: only with source adc or internal_temp"),
    ("health sensor offset", _config(UPTIME, source="reconnects", offset=1),
     "entities[6].offset: only with source adc or internal_temp"),
    ("health sensor precision", _config(UPTIME, source="wifi_signal", precision=0),
     "entities[6].precision: only with source adc or internal_temp"),
    ("health sensor config", _config(UPTIME, category="config"),
     "entities[6].category: must be diagnostic for a sensor"),
    ("health sensor disabled", _config(UPTIME, disabled_by_default="yes"),
     "entities[6].disabled_by_default: must be true or false"),
    ("health sensor unit", _config(UPTIME, unit=""), "entities[6].unit: must be a string"),
    ("health sensor interval", _config(UPTIME, interval=3601),
     "entities[6].interval: must be an integer from 1 to 3600"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "message"), [pytest.param(c, m, id=name) for name, c, m in CONFIG_ERRORS]
)
def test_config_error_names_the_field(tmp_path: Path, config: Any, message: str) -> None:
    code, out = _run_with_config(tmp_path, config)
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("homeseal: config error: ")
    assert message in lines[0], out


def test_every_new_kind_with_its_defaults_boots(tmp_path: Path) -> None:
    """The kinds beyond the first five (and every light mode, every health source)
    with only their required fields: no config error (the relay at port 9 is not there,
    so the device is still trying when it is stopped)."""
    cfg = _config(EVENT)
    cfg["entities"] += [NUMBER, SELECT, TEXT, RGB, CT, FAN, COVER]
    cfg["entities"] += [{**RGBW, "key": "strip", "pins": [30, 31, 32, 33]}]
    cfg["entities"] += [
        {**UPTIME, "key": src, "source": src}
        for src in ("uptime", "free_heap", "reconnects", "wifi_signal")
    ]
    cfg["entities"] += [{"key": "why", "kind": "text_sensor", "name": "Why",
                         "source": "restart_reason"}]  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [str(micropython_path()), str(FIRMWARE / "main.py"), "--config", str(path),
         "--state", str(tmp_path / "state")],
        env=micropython_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert "config error" not in out, out
    assert "device id " in out, out
