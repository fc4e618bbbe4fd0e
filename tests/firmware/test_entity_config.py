"""Config errors of the number, select, text_sensor and event kinds (firmware/README.md
"config.json"): each bad field stops the device with one line naming it, as
test_identity_config.py checks for the other fields."""

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
     "entities[6].pins[2].pin: must be a GPIO number"),
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
    """The four kinds with only their required fields: no config error (the relay at
    port 9 is not there, so the device is still trying when it is stopped)."""
    cfg = _config(EVENT)
    cfg["entities"] += [NUMBER, SELECT, TEXT]
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
