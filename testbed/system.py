"""The whole system, each part a real process in one state directory, as a user runs it:

- the relay (`RelayProcess`) with TLS, its certificate from `make_tls`, reached as
  https://localhost:PORT;
- the simulated device (`DeviceProcess`), provisioned with tools/provision.py, on the
  relay over wss://localhost:PORT: it verifies the relay's certificate against the
  demo CA and pins the relay's key, as a board does;
- Home Assistant (`HomeAssistant`) with the integration, onboarded, signed in to the
  relay and paired with the device through its own config-flow API.

Used by `scripts/demo` (tools/demo) and the end-to-end tests (tests/e2e).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .firmware import DeviceProcess, Entity
from .hass import TRANSIENT, FlowError, HomeAssistant
from .ports import free_port, port_in_use
from .process import ChildProcess, TestbedError, run_sync, wait_until
from .relay import RelayProcess
from .tls import TlsFiles, make_tls

# The demo device: one entity of every kind (DESIGN "Device model").
SWITCH_PIN, LIGHT_PIN, TEMP_PIN, DOOR_PIN, BUTTON_PIN = 5, 6, 26, 4, 7
# The pairing button, on GPIO0 as an ESP32 board's BOOT button (firmware defaults: a
# 5 s hold reopens pairing, a 15 s hold is a factory reset).
PAIRING_BUTTON = {"pin": 0}
LONG_PRESS_S, FACTORY_RESET_S = 5.0, 15.0
TEMP_SCALE = 0.01  # °C per step of the simulated ADC (0..65535)
TEMP_RANGE_C = (0.0, 65535 * TEMP_SCALE)
DEVICE_ENTITIES: list[Entity] = [
    # Back as they were after the simulated device restarts.
    {"key": "heater", "kind": "switch", "name": "Heater", "pin": SWITCH_PIN, "restore": "last"},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": LIGHT_PIN, "restore": "last"},
    {
        "key": "temperature",
        "kind": "sensor",
        "name": "Temperature",
        "pin": TEMP_PIN,
        # The simulated ADC reads 0..65535: hundredths of a degree.
        "scale": TEMP_SCALE,
        "precision": 1,
        "unit": "°C",
        "device_class": "temperature",
        "state_class": "measurement",
        "interval": 2,
    },
    {"key": "door", "kind": "binary_sensor", "name": "Door", "pin": DOOR_PIN,
     "device_class": "door", "debounce_ms": 20},
    {"key": "bell", "kind": "button", "name": "Bell", "pin": BUTTON_PIN, "pulse_ms": 200},
]  # fmt: skip
PORTS = ("relay_port", "control_port", "ha_port")
# The device's copy of the demo CA, in its work directory (relay.ca in its config.json).
DEVICE_CA = "relay-ca.pem"


def random_password() -> str:
    return "hs-" + secrets.token_urlsafe(18)


def demo_device(workdir: Path, relay_url: str, control_port: int | None) -> DeviceProcess:
    """The demo's simulated device (DEVICE_ENTITIES) in `workdir`."""
    return DeviceProcess(
        workdir,
        relay_url,
        entities=DEVICE_ENTITIES,
        name="Demo device",
        model="homeseal-sim",
        pairing_button=PAIRING_BUTTON,
        control_port=control_port,
    )


class System:
    """Relay + simulated device + Home Assistant, in one state directory.

    The first `up()` creates everything (certificate, relay account, HA owner,
    config entry, pairing); later ones reuse the state directory and only start
    the processes. What was created is recorded in `system.json` there.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        frontend: bool = False,
        newest_ha: bool = False,
        ha_port: int | None = None,
        ha_user: str = "demo",
        ha_password: str = "homeseal-demo",
        ha_env: Mapping[str, str] | None = None,
        say: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.dir = state_dir
        self.say = say
        self.state_file = state_dir / "system.json"
        self.info: dict[str, Any] = (
            json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        )
        info = self.info
        info.setdefault("ha_user", ha_user)
        info.setdefault("ha_password", ha_password)
        info.setdefault("relay_user", "demo")
        info.setdefault("relay_password", random_password())
        preferred = {"ha_port": ha_port}
        for name in PORTS:
            if name not in info:
                port = preferred.get(name)
                info[name] = port if port and not port_in_use(port) else free_port()
        self.timings: dict[str, float] = {}
        self.tls_dir = state_dir / "tls"
        self.relay = RelayProcess(
            state_dir / "relay", port=info["relay_port"], log_level="INFO", url_host="localhost"
        )
        self.device = demo_device(state_dir / "device", self.relay.device_url, info["control_port"])
        self.hass = HomeAssistant(
            state_dir / "homeassistant",
            info["ha_port"],
            frontend=frontend,
            newest=newest_ha,
            env=ha_env,
        )
        self.hass.token = info.get("ha_token")

    @property
    def parts(self) -> tuple[ChildProcess, ...]:
        """Every process, in start order."""
        return (self.relay, self.device, self.hass)

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.info, f, indent=2)

    @property
    def entry_id(self) -> str:
        return str(self.info["entry_id"])

    @property
    def device_id(self) -> str:
        return str(self.info["device_id"])

    @property
    def ca(self) -> Path:
        """The CA Home Assistant and the device trust."""
        return self.tls_dir / "ca.pem"

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        try:
            return fn()
        finally:
            self.timings[name] = time.monotonic() - t0

    def _check_ports(self) -> None:
        busy = [f"{name}={self.info[name]}" for name in PORTS if port_in_use(self.info[name])]
        if busy:
            raise TestbedError(
                f"ports recorded in {self.state_file} are in use ({', '.join(busy)}): "
                "is another demo running? Stop it, or remove the state directory."
            )

    def _tls(self) -> TlsFiles:
        # A state directory from before the CA: its self-signed certificate is its own CA.
        if not self.ca.exists() and (self.tls_dir / "cert.pem").exists():
            shutil.copy(self.tls_dir / "cert.pem", self.ca)
        tls = TlsFiles.load(self.tls_dir)
        if tls is None:
            self.say("generating a TLS certificate for localhost (and the CA that signs it)")
            tls = make_tls(self.tls_dir, ca_name="HomeSeal demo CA")
        return tls

    def up(self, *, account: bool = True, pair: bool = True) -> None:
        """Start everything; unless told otherwise, also add the relay account to Home
        Assistant and pair the device (the browser tests do those through the UI)."""
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._check_ports()
        self.save()
        self.relay.serve = self._tls()
        self.say(f"starting the relay on {self.relay.base}")
        self._timed("relay", self.relay.start)
        # The device verifies the relay's certificate (wss://, the demo CA, copied to where
        # its config names it) and pins the relay's static key.
        url = self.relay.device_url  # wss://localhost:PORT/ws/device, now that it serves TLS
        shutil.copy(self.ca, self.device.workdir / DEVICE_CA)
        self.device.write_config(
            url, relay={"url": url, "ca": DEVICE_CA, "relay_key": self.relay.relay_key()}
        )
        if self.device.provisioned is None:
            self.say("provisioning the simulated device (setup code, label)")
            self._timed("provision", lambda: self.device.provision(label=True))
        self.say("starting the simulated device on the MicroPython unix port")
        self._timed("device", lambda: self.device.start(wait_for="control socket"))
        self._timed("device_online", lambda: self.device.wait_log(r"relay connected", 60))
        # The simulated room: door closed (contact pulls the input low), 21.5 °C.
        self.set_door(False)
        self.set_temperature(21.5)
        self.hass.write_config()
        first = self.hass.token is None
        self.say(
            f"starting Home Assistant on {self.hass.url}"
            + (" (the first start takes longest)" if first else "")
        )
        self._timed("hass", lambda: self.hass.start(timeout=300))
        if self.hass.token is None:
            self.say("onboarding Home Assistant through its API")
            self.info["ha_token"] = self._timed(
                "onboard",
                lambda: self.hass.onboard(self.info["ha_user"], self.info["ha_password"]),
            )
            self.save()
        self.hass.wait_running()
        if not account:
            self.timings["total"] = time.monotonic() - t0
            return
        if "entry_id" not in self.info:
            self.say("adding the relay account (config flow)")
            self._timed("add_account", self._add_account)
            self.save()
        self.hass.wait_entry_state(self.entry_id)
        if not pair:
            self.timings["total"] = time.monotonic() - t0
            return
        if "device_id" not in self.info:
            self.say("pairing the device (Add device flow, SPAKE2+ with its setup code)")
            self._timed("pair", self._pair)
            self.save()
        self._timed("entities", self.wait_entities_available)
        self.timings["total"] = time.monotonic() - t0

    def _add_account(self) -> None:
        result = self.hass.add_account(
            self.relay.base,
            self.info["relay_user"],
            self.info["relay_password"],
            ca_pem=self.ca.read_text(),
            create=True,
        )
        if result.get("type") != "create_entry":
            raise FlowError("adding the relay account failed", result)
        self.info["entry_id"] = result["result"]["entry_id"]

    def _pair(self) -> None:
        prov = self.device.provisioned
        assert prov is not None
        result = self.hass.pair_device(self.entry_id, {"setup_payload": prov.qr_payload})
        if result.get("type") != "create_entry":
            raise FlowError("pairing failed", result)
        self.info["device_id"] = prov.device_id

    def entity_ids(self) -> dict[str, str]:
        return self.hass.entity_ids(self.device_id)

    def wait_entities_available(self, timeout: float = 60) -> dict[str, str]:
        """Wait until every entity of the device exists and is not unavailable."""
        keys = {e["key"] for e in DEVICE_ENTITIES}

        def ready() -> dict[str, str] | None:
            ids = self.entity_ids()
            if set(ids) != keys:
                return None
            for entity_id in ids.values():
                s = self.hass.state(entity_id)
                if s is None or s["state"] == "unavailable":
                    return None
            return ids

        what = "the device's entities to be available"
        return wait_until(ready, timeout, what, interval=0.5, transient=TRANSIENT)

    # -- the simulated room (the device's pins), from synchronous code

    def pins(self) -> dict[str, Any]:
        return run_sync(self.device.pins())

    def pulses(self) -> dict[str, int]:
        return run_sync(self.device.pulses())

    def set_pin(self, pin: int | str, value: float) -> None:
        run_sync(self.device.set_pin(pin, value))

    def set_door(self, is_open: bool) -> None:
        # A door contact to ground with pull-up: closed pulls the input low.
        self.set_pin(DOOR_PIN, 1 if is_open else 0)

    def set_temperature(self, celsius: float) -> None:
        """ValueError outside what the simulated sensor can read (TEMP_RANGE_C)."""
        low, high = TEMP_RANGE_C
        if not low <= celsius <= high:
            raise ValueError(f"the simulated sensor reads {low:g} to {high:g} °C")
        self.set_pin(TEMP_PIN, round(celsius / TEMP_SCALE))

    def hold_pairing_button(self, seconds: float) -> None:
        run_sync(self.device.hold_button(round(seconds * 1000)))

    def down(self) -> None:
        """Stop everything, Home Assistant first (it saves its state on the way out)."""
        for part in reversed(self.parts):
            try:
                part.stop()
            except Exception as err:
                self.say(f"stopping {part.name}: {err}")
