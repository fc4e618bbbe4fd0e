"""`scripts/demo`: the whole system on this machine, in one command.

    python -m tools.demo [--state-dir DIR] [--port 8123]   start (Ctrl-C stops)
    python -m tools.demo door open|closed                   flip the simulated door contact
    python -m tools.demo temperature 23.5                   set the simulated temperature
    python -m tools.demo pins                               show the simulated pins

The state (certificate, relay database, device keys, HA configuration) lives in
the state directory, ~/.cache/homeseal/demo by default, so a second start reuses
it: no new certificate, account or pairing, just the processes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from .harness import CACHE, HarnessError, System

DEFAULT_STATE = Path(os.environ.get("HOMESEAL_DEMO_DIR") or CACHE / "demo")


def _say(msg: str) -> None:
    print(f"\033[1mdemo:\033[0m {msg}", flush=True)


def _banner(system: System) -> None:
    prov = system.device.provisioned()
    info = system.info
    t = system.timings
    lines = [
        "",
        "HomeSeal demo is running.",
        "",
        f"  Home Assistant   {system.hass.url}",
        f"  login            {info['ha_user']} / {info['ha_password']}",
        f"  relay            {system.relay.url} (self-signed certificate {system.cert})",
        f"  relay account    {info['relay_user']} (password in {system.state_file})",
    ]
    if prov is not None:
        lines += [
            f"  device           {prov.device_id}, setup code {prov.setup_code}",
            f"  device label     {prov.label_png}",
            f"                   {prov.label_svg}",
        ]
    lines += [
        "",
        "  Flip the simulated door contact (in another terminal):",
        "      scripts/demo door open",
        "      scripts/demo door closed",
        "  Change the temperature:  scripts/demo temperature 23.5",
        "  Show the pins (switch, lamp PWM, button pulses):  scripts/demo pins",
        "",
        f"  logs             {system.dir}/*/*.log, {system.hass.config_dir}/home-assistant.log",
        f"  started in       {t.get('total', 0):.1f} s (Home Assistant {t.get('hass', 0):.1f} s)",
        "",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


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
        while True:
            time.sleep(1)
            for part in (system.relay, system.bridge, system.device, system.hass):
                part.check_alive()
    except KeyboardInterrupt:
        _say("stopping")
        return 0
    except HarnessError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        system.down()
        _say("stopped")


def control(state_dir: Path, argv: list[str]) -> int:
    system = System(state_dir)
    if "control_port" not in system.info or not (state_dir / "system.json").exists():
        print("demo: no demo state here; start it first with scripts/demo", file=sys.stderr)
        return 1
    dev = system.device
    try:
        match argv:
            case ["door", ("open" | "closed") as what]:
                dev.set_door(what == "open")
                print(f"door contact: {what}")
            case ["temperature", value]:
                dev.set_temperature(float(value))
                print(f"temperature: {float(value)} °C")
            case ["pins"]:
                print(json.dumps(dev.control({"op": "get"}), indent=2))
            case _:
                print(
                    "usage: scripts/demo [door open|closed | temperature C | pins]",
                    file=sys.stderr,
                )
                return 2
    except (OSError, HarnessError) as err:
        print(f"demo: the simulated device does not answer ({err}): is the demo running?")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n")[0])
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    p.add_argument("--port", type=int, default=8123, help="Home Assistant's port if free")
    p.add_argument("command", nargs="*", help="door open|closed, temperature C, pins")
    args = p.parse_args(argv)
    if args.command:
        return control(args.state_dir, args.command)
    return run(args.state_dir, args.port)


if __name__ == "__main__":
    sys.exit(main())
