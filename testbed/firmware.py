"""The firmware on the MicroPython unix port: firmware/main.py with simulated pins.

A `DeviceProcess` has a work directory with its `config.json` (written from the entity
list it is given), its state directory (keys, provisioning, pairing) and its log. It is
provisioned through the real command line (`python -m tools.provision ... --json`), as
a user provisions a board. `--control` opens the simulated pins' socket
(firmware/README.md "Simulated pins"): read pins and pulse counts, set inputs, read
the heap.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from homeseal_protocol import ids

from .paths import FIRMWARE, MICROPYTHON, ROOT, micropython_env
from .ports import free_port
from .process import ChildProcess, TestbedError

Entity = Mapping[str, Any]

# The device of the firmware-level suites (firmware, attacks) and the firmware benchmark:
# every entity kind, on numbered simulated pins the tests read and set.
TEST_ENTITIES: list[Entity] = [
    {"key": "relay1", "kind": "switch", "name": "Relay 1", "pin": 5},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": 6},
    {
        "key": "temp",
        "kind": "sensor",
        "name": "Temperature",
        "pin": 26,
        "scale": 0.01,
        "precision": 2,
        "unit": "°C",
        "device_class": "temperature",
        "state_class": "measurement",
        "interval": 1,
    },
    {"key": "chip", "kind": "sensor", "name": "Chip", "source": "internal_temp", "interval": 1,
     "category": "diagnostic", "disabled_by_default": True},
    {"key": "door", "kind": "binary_sensor", "name": "Door", "pin": 4, "device_class": "door"},
    {"key": "bell", "kind": "button", "name": "Bell", "pin": 7, "pulse_ms": 100},
]  # fmt: skip
# One entity of each kind beyond the first five (PROTOCOL §7), on pins that neither
# TEST_ENTITIES nor the HA tests' device use.
MORE_KINDS: list[Entity] = [
    {"key": "fan_speed", "kind": "number", "name": "Fan speed", "min": 0, "max": 100,
     "step": 5, "unit": "%", "mode": "slider", "output": "pwm", "pin": 12},
    {"key": "colour", "kind": "select", "name": "Status colour",
     "options": ["red", "green", "blue"], "pins": [13, 14, 15]},
    {"key": "address", "kind": "text_sensor", "name": "Address", "source": "ip",
     "interval": 1, "category": "diagnostic"},
    {"key": "wall", "kind": "event", "name": "Wall button", "pin": 16, "debounce_ms": 20,
     "long_ms": 400, "double_ms": 300},
    {"key": "mood", "kind": "light", "name": "Mood light", "color_mode": "rgb",
     "pins": [17, 18, 19]},
    {"key": "desk", "kind": "light", "name": "Desk lamp", "color_mode": "color_temp",
     "pins": [20, 21], "min_kelvin": 2700, "max_kelvin": 6500},
    {"key": "vent", "kind": "fan", "name": "Vent", "pin": 22, "direction_pin": 27},
    {"key": "blind", "kind": "cover", "name": "Blind", "device_class": "blind",
     "open_pin": 28, "close_pin": 29, "open_time": 2, "close_time": 2},
]  # fmt: skip
# The device's own health (diagnostic entities; PROTOCOL §7 sensor and text_sensor).
HEALTH: list[Entity] = [
    {"key": "uptime", "kind": "sensor", "name": "Uptime", "source": "uptime", "interval": 1},
    {"key": "free_heap", "kind": "sensor", "name": "Free heap", "source": "free_heap",
     "interval": 1},
    {"key": "reconnects", "kind": "sensor", "name": "Reconnects", "source": "reconnects",
     "interval": 1},
    {"key": "wifi_signal", "kind": "sensor", "name": "Wi-Fi signal", "source": "wifi_signal",
     "interval": 1},
    {"key": "restart_reason", "kind": "text_sensor", "name": "Last restart",
     "source": "restart_reason", "interval": 1},
]  # fmt: skip
TEST_PAIRING_BUTTON: Mapping[str, Any] = {"pin": 0, "long_press_ms": 300, "factory_reset_ms": 1200}


def write_config(
    path: Path,
    relay_url: str,
    entities: Sequence[Entity],
    *,
    name: str = "Test device",
    state_interval: int = 60,
    **fields: Any,
) -> Path:
    """A device's config.json: the relay, the entities, and any other top-level `fields`
    (model, pairing_button, a whole `relay` object with its relay_key …)."""
    config: dict[str, Any] = {
        "name": name,
        "relay": {"url": relay_url},
        "entities": [dict(e) for e in entities],
        "state_interval": state_interval,
    }
    config.update({k: v for k, v in fields.items() if v is not None})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


@dataclass(frozen=True)
class Provisioned:
    """What `tools.provision --json` printed: the device's label."""

    device_id: str  # formatted, as on the label
    setup_code: str  # as printed: 1234-5678
    qr_payload: str
    label_png: str = ""
    label_svg: str = ""
    generated_release_key: bool = False  # with release_key: the key was made now

    @property
    def code(self) -> str:
        """The setup code's 8 digits."""
        return self.setup_code.replace("-", "")


def provision(
    state: Path,
    code: str | None = None,
    iterations: int = 1000,
    label: Path | None = None,
    release_key: Path | None = None,
) -> Provisioned:
    """Run the provisioning tool as a user would (its command line, JSON output).
    1,000 PBKDF2 iterations by default: tests measure the protocol, not PBKDF2.
    `release_key`: the installation's firmware release key (made there if absent)."""
    cmd = [sys.executable, "-m", "tools.provision", str(state), "--iterations", str(iterations),
           "--json"]  # fmt: skip
    cmd += ["--code", code] if code is not None else []
    cmd += ["--label", str(label)] if label is not None else ["--no-label"]
    cmd += ["--release-key", str(release_key)] if release_key is not None else []
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise TestbedError(f"provisioning failed (exit {proc.returncode}): {proc.stderr.strip()}")
    out = json.loads(proc.stdout)
    fields = ("device_id", "setup_code", "qr_payload", "label_png", "label_svg",
              "generated_release_key")  # fmt: skip
    return Provisioned(**{k: out[k] for k in fields if k in out})


def build_firmware(
    out: Path, arch: str = "x64", hw: str = "sim", sign: Path | None = None
) -> dict[str, Any]:
    """Build a firmware bundle with scripts/build-firmware, as a user would; returns its
    manifest."""
    cmd = [str(ROOT / "scripts" / "build-firmware"), str(out), "--arch", arch, "--hw", hw]
    cmd += ["--sign", str(sign)] if sign is not None else []
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise TestbedError(f"build-firmware failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return json.loads((out / "manifest.json").read_bytes())  # type: ignore[no-any-return]


class DeviceProcess(ChildProcess):
    """firmware/main.py on the unix port with simulated pins, in `workdir`.

    The config (`entities` and the other fields) is written at the first start if the
    work directory has none; `write_config` (re)writes it. `control_port`: 0 picks a
    free port, None runs without the control socket. `main` and `env` run another build
    (precompiled .mpy). `supervised` runs it under scripts/simdevice, which starts the
    firmware again after it reset itself (its watchdog, an unexpected error), as a
    board does."""

    name = "simulated device"

    def __init__(
        self,
        workdir: Path,
        relay_url: str,
        *,
        entities: Sequence[Entity] = TEST_ENTITIES,
        name: str = "Test device",
        model: str | None = None,
        pairing_button: Mapping[str, Any] | None = TEST_PAIRING_BUTTON,
        state_interval: int = 60,
        control_port: int | None = 0,
        heapsize: str = "1m",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        main: Path | None = None,
        supervised: bool = False,
    ) -> None:
        super().__init__(workdir / "device.log")
        self.supervised = supervised
        self.workdir = workdir
        self.state = workdir / "state"
        self.config = workdir / "config.json"
        self.relay_url = relay_url
        self.entities = list(entities)
        self.fields: dict[str, Any] = {
            "name": name,
            "model": model,
            "pairing_button": pairing_button,
            "state_interval": state_interval,
        }
        self.control_port = free_port() if control_port == 0 else control_port
        self.heapsize = heapsize
        self.args = list(args)
        self.env = env
        self.main = main or FIRMWARE / "main.py"
        self._provisioned: Provisioned | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def write_config(self, relay_url: str | None = None, **changes: Any) -> Path:
        """(Re)write config.json from this device's settings, with `changes` on top."""
        if relay_url is not None:
            self.relay_url = relay_url
        fields = {**self.fields, **changes}
        return write_config(self.config, self.relay_url, self.entities, **fields)

    # -- provisioning

    def provision(
        self, code: str | None = None, iterations: int = 1000, *, label: bool = False
    ) -> Provisioned:
        """Provision the state directory (the label beside it, never in it: the state
        directory is what goes onto a board); recorded in provisioned.json."""
        self._provisioned = provision(
            self.state, code, iterations, self.workdir / "label" if label else None
        )
        (self.workdir / "provisioned.json").write_text(json.dumps(asdict(self._provisioned)))
        return self._provisioned

    @property
    def provisioned(self) -> Provisioned | None:
        """The provisioning record (read once, then kept: safe to use in an event loop)."""
        path = self.workdir / "provisioned.json"
        if self._provisioned is None and path.exists():
            self._provisioned = Provisioned(**json.loads(path.read_text()))
        return self._provisioned

    def _label(self) -> Provisioned:
        if self.provisioned is None:
            raise TestbedError(f"{self.workdir} is not provisioned")
        return self.provisioned

    @property
    def id_text(self) -> str:
        """The device id as its label prints it."""
        return self._label().device_id

    @property
    def setup_code(self) -> str:
        """The setup code's 8 digits."""
        return self._label().code

    @property
    def qr_payload(self) -> str:
        return self._label().qr_payload

    # -- identity (the state directory, as the firmware wrote it)

    @property
    def identity(self) -> dict[str, Any]:
        return json.loads((self.state / "identity.json").read_text())  # type: ignore[no-any-return]

    @property
    def public_key(self) -> bytes:
        return bytes.fromhex(self.identity["public_key"])

    @property
    def device_id(self) -> bytes:
        return ids.endpoint_id(self.public_key)

    # -- the process

    def command(self) -> list[str]:
        if self.supervised:
            # simdevice's layout is this one: DIR/config.json, DIR/state.
            if self.control_port is None:
                raise TestbedError("a supervised device needs its control socket")
            return [str(ROOT / "scripts" / "simdevice"), str(self.workdir), "--heap",
                    self.heapsize, "--control", str(self.control_port), *self.args]  # fmt: skip
        cmd = [str(MICROPYTHON), "-X", f"heapsize={self.heapsize}", str(self.main),
               "--config", str(self.config), "--state", str(self.state)]  # fmt: skip
        if self.control_port is not None:
            cmd += ["--control", f"127.0.0.1:{self.control_port}"]
        return cmd + self.args

    def start(self, wait_for: str | None = None, within: float = 30) -> None:
        """Start the firmware; with `wait_for`, wait until it logs that."""
        if not MICROPYTHON.is_file():
            raise TestbedError(
                f"MicroPython unix port not found at {MICROPYTHON}: run scripts/setup"
            )
        if not self.config.exists():
            self.write_config()
        env = dict(self.env or micropython_env())
        env.setdefault("HOMESEAL_MICROPYTHON", str(MICROPYTHON))  # for a supervised one
        self.spawn(self.command(), cwd=self.workdir, env=env)
        if wait_for is not None:
            self.wait_log(wait_for, within)

    # -- the simulated pins (hw_sim's control socket)

    async def control(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """One request on the control socket; its answer."""
        if self.control_port is None:
            raise TestbedError(f"{self.name} runs without a control socket")
        reader, writer = await asyncio.open_connection("127.0.0.1", self.control_port)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 10)
        finally:
            writer.close()
            await writer.wait_closed()
        if not line:
            raise TestbedError("the device closed its control socket without answering")
        return json.loads(line)  # type: ignore[no-any-return]

    async def pins(self) -> dict[str, Any]:
        """Pin name → level (outputs, PWM duty, inputs, ADC readings, internal_temp)."""
        return (await self.control({"op": "get"}))["pins"]  # type: ignore[no-any-return]

    async def pulses(self) -> dict[str, int]:
        """Output pin → how often it switched on."""
        return (await self.control({"op": "get"}))["pulses"]  # type: ignore[no-any-return]

    async def set_pin(self, pin: str | int, value: float | str) -> None:
        answer = await self.control({"op": "set", "pin": str(pin), "value": value})
        if answer != {"ok": True}:
            raise TestbedError(f"setting pin {pin} to {value}: {answer}")

    async def mem(self) -> dict[str, int]:
        """The heap after a gc.collect(): alloc, free (and peak with --mem-stats)."""
        return await self.control({"op": "mem"})

    async def hold_button(self, ms: int) -> None:
        """Press the pairing button for `ms` (its input pulled low)."""
        button = self.fields["pairing_button"]
        if button is None:
            raise TestbedError(f"{self.workdir}: the device has no pairing button")
        await self.set_pin(button["pin"], 0)
        await asyncio.sleep(ms / 1000)
        await self.set_pin(button["pin"], 1)
