"""`scripts/demo`: the whole system on this machine, in one command.

    python -m tools.demo [--state-dir DIR] [--port 8123]   start (Ctrl-C stops)
    python -m tools.demo door open|closed                   flip the simulated door contact
    python -m tools.demo temperature 23.5                   set the simulated temperature
    python -m tools.demo pins                               show the simulated device's pins
    python -m tools.demo button 16                          hold the pairing button 16 s

The state (certificate, relay database, device keys, HA configuration) lives in
the state directory, `.demo/` in the checkout by default (HOMESEAL_DEMO_DIR
overrides it), so a second start reuses it: no new certificate, account or
pairing, just the processes. It belongs to the checkout that runs it.

While it runs, a part that dies (the relay, the simulated device, Home
Assistant) is said so, with its last log lines, and restarted; one
that dies again and again is given up on, and the demo stops saying why.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from testbed.paths import ROOT
from testbed.process import ChildProcess, TestbedError, run_sync
from testbed.system import (
    BUTTON_PIN,
    DEVICE_ENTITIES,
    DOOR_PIN,
    FACTORY_RESET_S,
    LIGHT_PIN,
    LONG_PRESS_S,
    SWITCH_PIN,
    TEMP_PIN,
    System,
)

DEFAULT_STATE = Path(os.environ.get("HOMESEAL_DEMO_DIR") or ROOT / ".demo")
# A part is restarted after it dies, at most this many times in RESTART_WINDOW_S.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 600.0


def _say(msg: str) -> None:
    print(f"\033[1mdemo:\033[0m {msg}", flush=True)


def _banner(system: System) -> None:
    prov = system.device.provisioned
    info = system.info
    t = system.timings
    setup = float(os.environ.get("HOMESEAL_SETUP_SECONDS") or 0)
    lines = [
        "",
        "HomeSeal demo is running.",
        "",
        f"  Home Assistant   {system.hass.url}",
        f"  login            {info['ha_user']} / {info['ha_password']}",
        f"  relay            {system.relay.base} (certificate signed by {system.ca})",
        f"  relay account    {info['relay_user']} (password in {system.state_file})",
    ]
    if prov is not None:
        lines += [
            f"  device           {prov.device_id}, setup code {prov.setup_code}",
            f"  device label     {prov.label_png}",
            f"                   {prov.label_svg}",
        ]
    started = (
        f"{setup + t.get('total', 0):.1f} s: set-up {setup:.1f} s, "
        f"the system {t.get('total', 0):.1f} s (Home Assistant {t.get('hass', 0):.1f} s)"
    )
    lines += [
        "",
        "  Flip the simulated door contact (in another terminal):",
        "      scripts/demo door open",
        "      scripts/demo door closed",
        "  Change the temperature:  scripts/demo temperature 23.5",
        "  Show the device's pins:  scripts/demo pins",
        "  Hold its pairing button: scripts/demo button 5   (15 or more: factory reset)",
        "",
        f"  logs             {system.dir}/*/*.log, {system.hass.config_dir}/home-assistant.log",
        f"  ready in         {started}",
        "",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


class Supervisor:
    """Restarts a part of the system that died, saying what happened."""

    def __init__(self, system: System) -> None:
        self._system = system
        self._deaths: dict[str, list[float]] = {}

    def check(self) -> None:
        for part in self._system.parts:
            code = part.returncode
            if code is None:
                continue
            now = time.monotonic()
            deaths = [t for t in self._deaths.get(part.name, []) if now - t < RESTART_WINDOW_S]
            deaths.append(now)
            self._deaths[part.name] = deaths
            tail = "\n".join(f"    {line}" for line in part.output().splitlines()[-8:])
            _say(f"{part.name} exited with status {code}; its last lines ({part.log}):\n{tail}")
            if len(deaths) > MAX_RESTARTS:
                raise TestbedError(
                    f"{part.name} died {len(deaths)} times in {RESTART_WINDOW_S / 60:.0f} "
                    f"minutes; giving up. Its log is {part.log}; start again with "
                    "scripts/demo, or delete the state directory to start from scratch."
                )
            _say(f"restarting {part.name}")
            self._restart(part)

    def _restart(self, part: ChildProcess) -> None:
        system = self._system
        if part is system.device:
            system.device.start(wait_for="control socket")
        elif part is system.hass:
            system.hass.start(timeout=300)
        else:
            part.start()
        _say(f"{part.name} is running again")


def run(state_dir: Path, port: int) -> int:
    system = System(state_dir, frontend=True, ha_port=port, say=_say)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    # SIGINT explicitly too: a shell starts background jobs with SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        system.up()
        (state_dir / "timings.json").write_text(json.dumps(system.timings, indent=2))
        _banner(system)
        supervisor = Supervisor(system)
        while True:
            time.sleep(1)
            supervisor.check()
    except KeyboardInterrupt:
        _say("stopping")
        return 0
    except TestbedError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        system.down()
        _say("stopped")


def describe_pins(pins: dict[str, Any], pulses: dict[str, int]) -> list[str]:
    """One line per entity of the demo device: its pin and its value, in its unit."""
    by_pin = {str(e.get("pin")): e for e in DEVICE_ENTITIES}
    lines = []
    for pin, what in (
        (SWITCH_PIN, "switch"),
        (LIGHT_PIN, "light"),
        (TEMP_PIN, "sensor"),
        (DOOR_PIN, "binary_sensor"),
        (BUTTON_PIN, "button"),
    ):
        entity = by_pin[str(pin)]
        raw = pins.get(str(pin))
        match what:
            case "switch":
                value = "on" if raw == 1 else "off"
            case "light":
                value = "off" if not raw else f"on, {round(raw / 65535 * 100)} % (duty {raw})"
            case "sensor":
                value = "?" if raw is None else f"{raw * entity['scale']:.1f} {entity['unit']}"
            case "binary_sensor":
                # The contact to ground with a pull-up: an open door reads high.
                value = "open" if raw == 1 else "closed"
            case _:
                count = pulses.get(str(pin), 0)
                value = f"pressed {count} time{'s' if count != 1 else ''}"
        lines.append(f"{entity['name']:<12} pin {pin:<3} {value}")
    return lines


def control(state_dir: Path, argv: list[str]) -> int:
    if not (state_dir / "system.json").exists():
        print("demo: no demo state here; start it first with scripts/demo", file=sys.stderr)
        return 1
    system = System(state_dir)
    try:
        match argv:
            case ["door", ("open" | "closed") as what]:
                system.set_door(what == "open")
                print(f"door contact: {what}")
            case ["temperature", value] if (celsius := _number(value)) is not None:
                try:
                    system.set_temperature(celsius)
                except ValueError as err:
                    print(f"demo: {err}", file=sys.stderr)
                    return 2
                print(f"temperature: {celsius} °C")
            case ["button", seconds] if (held := _number(seconds)) is not None and held >= 0:
                print(f"holding the pairing button for {held:g} s …", flush=True)
                system.hold_pairing_button(held)
                if held >= FACTORY_RESET_S:
                    print("released: a factory reset (the device forgets Home Assistant)")
                elif held >= LONG_PRESS_S:
                    print("released: the pairing window is open (and its attempt counter reset)")
                else:
                    print(f"released: too short to do anything (hold {LONG_PRESS_S:g} s or more)")
            case ["pins"]:
                state = run_sync(system.device.control({"op": "get"}))
                print("\n".join(describe_pins(state["pins"], state["pulses"])))
            case _:
                print(
                    "usage: scripts/demo [door open|closed | temperature C | button S | pins]",
                    file=sys.stderr,
                )
                return 2
    except (OSError, TestbedError) as err:
        print(f"demo: the simulated device does not answer ({err}): is the demo running?")
        return 1
    return 0


def _number(text: str) -> float | None:
    """A finite number from the command line, or None (the usage line answers it)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n")[0])
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    p.add_argument("--port", type=int, default=8123, help="Home Assistant's port if free")
    p.add_argument(
        "command", nargs="*", help="door open|closed, temperature C, button SECONDS, pins"
    )
    args = p.parse_args(argv)
    if args.command:
        return control(args.state_dir, args.command)
    return run(args.state_dir, args.port)


if __name__ == "__main__":
    sys.exit(main())
