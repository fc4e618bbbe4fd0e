"""Real firmware devices for the soak run: firmware/main.py on the MicroPython unix
port with simulated pins, provisioned with the real tool (tools/provision.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from custom_components.homeseal.client import ids

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("HOMESEAL_CACHE", Path.home() / ".cache" / "homeseal"))
MICROPYTHON = Path(os.environ.get("HOMESEAL_MICROPYTHON", CACHE / "bin" / "micropython"))

# The same entity keys as the simulated devices, so commands need not tell them apart.
ENTITIES: list[dict[str, Any]] = [
    {"key": "relay", "kind": "switch", "name": "Relay", "pin": 5},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": 6},
    {"key": "temp", "kind": "sensor", "name": "Chip", "source": "internal_temp", "interval": 5},
]


class FirmwareDevice:
    def __init__(self, workdir: Path, relay_url: str, code: str, heap: str = "256k") -> None:
        self.workdir = workdir
        self.state = workdir / "state"
        self.config = workdir / "config.json"
        self.log = workdir / "device.log"
        self.relay_url = relay_url
        self.code = code
        self.heap = heap
        self.proc: subprocess.Popen[bytes] | None = None
        self.device_id = b""

    def provision(self) -> None:
        """Key and setup code from the real provisioning tool (1,000 PBKDF2 iterations:
        the soak measures traffic, not PBKDF2)."""
        self.state.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "tools.provision", str(self.state), "--code", self.code,
             "--iterations", "1000", "--json", "--no-label"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        self.device_id = ids.parse_id(json.loads(out.stdout)["device_id"])
        self.config.write_text(
            json.dumps(
                {
                    "name": f"Soak firmware {self.workdir.name}",
                    "model": "homeseal-unix",
                    "relay": {"url": self.relay_url},
                    "pairing_button": {"pin": 0, "long_press_ms": 5000},
                    # A full state push every 10 s adds device → controller traffic.
                    "state_interval": 10,
                    "entities": ENTITIES,
                }
            )
        )

    def start(self) -> None:
        if not MICROPYTHON.is_file():
            raise RuntimeError(f"no MicroPython unix port at {MICROPYTHON} (run scripts/setup)")
        env = {**os.environ, "MICROPYPATH": f".frozen:{ROOT / 'firmware'}"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(MICROPYTHON), "-X", f"heapsize={self.heap}", str(ROOT / "firmware/main.py"),
                 "--config", str(self.config), "--state", str(self.state)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_log(self, pattern: str, within: float) -> None:
        deadline = time.monotonic() + within
        while not re.search(pattern, self.output()):
            if not self.alive:
                raise RuntimeError(f"firmware exited:\n{self.output()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"firmware: no {pattern!r} in {within} s:\n{self.output()[-2000:]}"
                )
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
