"""First boot, the device identity, the relay key pin, and config errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from homeseal_protocol import ids
from testbed.endpoints import Controller
from testbed.firmware import TEST_ENTITIES as ENTITIES
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess
from tests.firmware.statefiles import read_record
from tests.support import FIRMWARE, micropython_env, micropython_path

pytestmark = pytest.mark.micropython


async def test_first_boot_creates_the_identity_and_the_relay_accepts_it(
    make_device: Callable[..., DeviceProcess],
) -> None:
    dev = make_device()
    dev.start()
    await dev.wait_log_async("relay connected claimed=0")
    out = dev.output()
    assert "first boot: generated the device key" in out
    assert "pairing unavailable: not provisioned" in out

    ident = dev.identity
    priv = bytes.fromhex(ident["private_key"])
    pub = (
        X25519PrivateKey.from_private_bytes(priv)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    assert ident["public_key"] == pub.hex()
    assert f"device id {ids.format_id(ids.endpoint_id(pub))}\n" in out
    # Every record in its first slot (store.py: no temporary files, no renames); the
    # key last, so the counter and the pairing record exist once identity.json says so.
    assert sorted(p.name for p in dev.state.iterdir()) == [
        "attempts.json",
        "identity.json",
        "pairing.json",
    ]
    assert ident["state_files"] is True
    assert read_record(dev.state, "attempts.json") == {"failed": 0}
    assert read_record(dev.state, "pairing.json") == {"controller_id": None}

    # The second boot keeps the key and the id.
    dev.stop()
    dev.start()
    await dev.wait_log_async("relay connected")
    assert "first boot" not in dev.output()
    assert read_record(dev.state, "identity.json") == {
        k: v for k, v in ident.items() if k not in ("seq", "sum")
    }
    assert f"device id {ids.format_id(ids.endpoint_id(pub))}\n" in dev.output()


def _modes(state: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}


def _start_with_umask_022(dev: DeviceProcess) -> None:
    """Start the device from a process whose umask lets everyone read new files: the
    firmware's own umask (main.py, through ffi) is what keeps its files private."""
    old = os.umask(0o022)
    try:
        dev.start()
    finally:
        os.umask(old)


async def test_l6_state_files_are_private_from_creation(
    make_device: Callable[..., DeviceProcess], controller: Controller
) -> None:
    """identity.json (the private key), pairing.json (the pinned controller) and every
    other state file the firmware writes are born 0600, its state directory 0700."""
    dev = make_device()
    _start_with_umask_022(dev)
    await dev.wait_log_async("relay connected claimed=0")
    assert "first boot: generated the device key" in dev.output()
    assert stat.S_IMODE(dev.state.stat().st_mode) == 0o700
    modes = _modes(dev.state)
    assert modes == dict.fromkeys(("attempts.json", "identity.json", "pairing.json"), 0o600)
    # Provisioned, paired, claimed: the records the device wrote meanwhile (their second
    # slots too) are 0600 as well; provisioning.json is the tool's, 0600 too.
    dev.stop()
    provision(dev.state, "20231187")
    _start_with_umask_022(dev)
    await dev.wait_log_async("relay connected")
    await controller.pair(dev.device_id, "20231187")
    await dev.wait_log_async("claimed by controller")
    modes = _modes(dev.state)
    assert {"pairing.json", "pairing.json.b", "attempts.json", "provisioning.json"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o600), modes


def _relay_key(relay: RelayProcess) -> str:
    with urllib.request.urlopen(relay.base + "/api/v1/relay", timeout=10) as r:
        return str(json.loads(r.read())["relay_key"])


async def test_relay_key_pin(
    make_device: Callable[..., DeviceProcess], relay: RelayProcess
) -> None:
    good = make_device()
    good.write_config(relay={"url": relay.device_url})
    cfg = json.loads(good.config.read_text())
    cfg["relay"]["relay_key"] = _relay_key(relay)
    good.config.write_text(json.dumps(cfg))
    good.start()
    await good.wait_log_async("relay connected")

    bad = make_device()
    cfg["relay"]["relay_key"] = "ab" * 32
    bad.config.write_text(json.dumps(cfg))
    bad.start()
    await bad.wait_log_async("relay auth refused: relay key does not match relay.relay_key")
    await bad.wait_log_async("relay reconnect in")
    assert "relay connected" not in bad.output()
    assert bad.alive


def _run_with_config(tmp_path: Path, config: Any, raw: str | None = None) -> tuple[int, str]:
    path = tmp_path / "config.json"
    path.write_text(raw if raw is not None else json.dumps(config))
    proc = subprocess.run(
        [str(micropython_path()), str(FIRMWARE / "main.py"), "--config", str(path),
         "--state", str(tmp_path / "state")],
        env=micropython_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def _config(**changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "relay": {"url": "ws://127.0.0.1:9/ws/device"},
        "entities": [dict(e) for e in ENTITIES],
    }
    cfg.update(changes)
    return cfg


def _entities(*patches: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
    ents = [dict(e) for e in ENTITIES]
    for i, patch in patches:
        ents[i].update(patch)
    return ents


NUMBER = {"key": "n", "kind": "number", "name": "N"}
SELECT = {"key": "s", "kind": "select", "name": "S", "options": ["a", "b"]}
TEXT = {"key": "t", "kind": "text_sensor", "name": "T"}
EVENT = {"key": "e", "kind": "event", "name": "E", "pin": 9}
CONFIG_ERRORS: list[tuple[str, Any, str | None, str]] = [
    ("not json", None, "{relay:", "config.json: is not valid JSON"),
    ("no relay", {"entities": []}, None, "relay: is required"),
    ("http url", _config(relay={"url": "http://x/ws"}), None,
     "relay.url: must start with ws:// or wss://"),
    ("bad port", _config(relay={"url": "ws://x:99999"}), None, "relay.url: bad port"),
    # The unix port has TLS (scripts/setup): wss:// is fine, but not without a CA.
    ("wss without ca", _config(relay={"url": "wss://relay.example"}), None,
     "relay.ca: is required for wss://"),
    ("wss unreadable ca", _config(relay={"url": "wss://relay.example", "ca": "/nonexistent"}),
     None, "relay.ca: cannot read the CA file /nonexistent"),
    ("bad relay key", _config(relay={"url": "ws://x", "relay_key": "12"}), None,
     "relay.relay_key: must be 64 hexadecimal characters"),
    ("unknown top-level field", _config(wfi={}), None, "wfi: unknown field"),
    ("unknown kind", _config(entities=_entities((0, {"kind": "vacuum"}))), None,
     "entities[0].kind: must be one of"),
    ("bad key", _config(entities=_entities((1, {"key": "Lamp!"}))), None,
     "entities[1].key: must be 1 to 32 characters"),
    ("duplicate key", _config(entities=_entities((1, {"key": "relay1"}))), None,
     "entities[1].key: duplicate key relay1"),
    ("shared pin", _config(entities=_entities((1, {"pin": 5}))), None,
     "entities[1].pin: pin 5 is already used"),
    ("unknown entity field", _config(entities=_entities((0, {"colour": "red"}))), None,
     "entities[0].colour: unknown field"),
    ("wrong type", _config(entities=_entities((1, {"freq": "fast"}))), None,
     "entities[1].freq: must be an integer"),
    ("config sensor", _config(entities=_entities((3, {"category": "config"}))), None,
     "entities[3].category: must be diagnostic for a sensor"),
    ("unknown category", _config(entities=_entities((0, {"category": "settings"}))), None,
     "entities[0].category: must be config or diagnostic for a switch"),
    ("disabled not a bool", _config(entities=_entities((0, {"disabled_by_default": "yes"}))),
     None, "entities[0].disabled_by_default: must be true or false"),
    ("unknown restore", _config(entities=_entities((0, {"restore": "previous"}))), None,
     "entities[0].restore: must be off, on, last"),
    ("restore on a sensor", _config(entities=_entities((2, {"restore": "last"}))), None,
     "entities[2].restore: unknown field"),
    ("save delay zero", _config(save_delay=0), None,
     "save_delay: must be an integer from 1 to 3600"),
    ("missing pin", _config(entities=[{"key": "a", "kind": "switch", "name": "A"}]), None,
     "entities[0].pin: is required"),
    ("button timings", _config(pairing_button={"pin": 0, "long_press_ms": 5000,
                                               "factory_reset_ms": 4000}), None,
     "pairing_button.factory_reset_ms: must be longer than long_press_ms"),
    *(
        (name, _config(entities=[{**base, **change}]), None, message)
        for name, base, change, message in (
            ("number max below min", NUMBER, {"min": 10, "max": 5},
             "entities[0].max: must be greater than min"),
            ("number step zero", NUMBER, {"step": 0}, "entities[0].step: must be greater than 0"),
            ("number initial outside", NUMBER, {"initial": 101},
             "entities[0].initial: must be from min to max"),
            ("number mode", NUMBER, {"mode": "dial"},
             "entities[0].mode: must be auto, box, slider"),
            ("number output", NUMBER, {"output": "dac"},
             "entities[0].output: must be none, pwm, servo"),
            ("number servo without pin", {**NUMBER, "output": "servo"}, {},
             "entities[0].pin: is required"),
            ("number pulse", NUMBER, {"pulse_us": [2000, 1000]},
             "entities[0].pulse_us: must be [shortest, longest] within 1 to 20000"),
            ("number restore on", NUMBER, {"restore": "on"},
             "entities[0].restore: must be off, last"),
            ("number value not a number", NUMBER, {"min": "0"},
             "entities[0].min: must be a number"),
            ("select no options", SELECT, {"options": []},
             "entities[0].options: must be a list of 1 to 16 strings"),
            ("select duplicate option", SELECT, {"options": ["a", "a"]},
             "entities[0].options[1]: duplicate a"),
            ("select long option", SELECT, {"options": ["a" * 33]},
             "entities[0].options[0]: must be a string of 1 to 32 characters"),
            ("select initial", SELECT, {"initial": "c"},
             "entities[0].initial: must be one of the options"),
            ("select pins count", SELECT, {"pins": [7]},
             "entities[0].pins: must list one pin per option"),
            ("select pin reused", SELECT, {"pins": [7, 7]},
             "entities[0].pins[1]: pin 7 is already used"),
            ("text source", TEXT, {"source": "ssid"},
             "entities[0].source: must be ip, restart_reason"),
            ("text category", TEXT, {"category": "config"},
             "entities[0].category: must be diagnostic for a text_sensor"),
            ("text pin", TEXT, {"pin": 3}, "entities[0].pin: unknown field"),
            ("event long", EVENT, {"long_ms": 50},
             "entities[0].long_ms: must be an integer from 100 to 10000"),
            ("event type", EVENT, {"types": ["triple"]},
             "entities[0].types[0]: must be one of single, double, long"),
            ("event double without window", EVENT, {"double_ms": 0, "types": ["double"]},
             "entities[0].types: double needs double_ms greater than 0"),
            ("event category", EVENT, {"category": "config"},
             "entities[0].category: must be diagnostic for an event"),
        )
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "raw", "message"),
    [pytest.param(c, r, m, id=name) for name, c, r, m in CONFIG_ERRORS],
)
def test_config_error_stops_with_one_clear_line(
    tmp_path: Path, config: Any, raw: str | None, message: str
) -> None:
    code, out = _run_with_config(tmp_path, config, raw)
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("homeseal: config error: ")
    assert message in lines[0], out


def test_missing_config_and_corrupt_state(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(micropython_path()), str(FIRMWARE / "main.py"), "--config",
         str(tmp_path / "nope.json"), "--state", str(tmp_path / "state")],
        env=micropython_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout.strip() == (
        f"homeseal: config error: {tmp_path}/nope.json: cannot read the file"
    )

    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "identity.json").write_text('{"private_key": "00", "public_key": "11"}')
    code, out = _run_with_config(tmp_path, _config())
    assert code == 2
    assert out.strip() == (
        "homeseal: state error: identity.json is corrupt (private and public key do not match)"
    )
