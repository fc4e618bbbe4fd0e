"""Unit checks of firmware modules on the MicroPython unix port (tests/firmware/mpy/units.py):
envelope, websocket accept key, backoff, URLs, message parsing, the result
cache, debouncing, the pairing button, session limits."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_micropython


def test_firmware_units() -> None:
    out = run_micropython(Path(__file__).parent / "mpy" / "units.py", heapsize="1m")
    lines = out.strip().splitlines()
    assert lines[-1] == "done", out
    assert all(line.startswith("ok ") for line in lines[:-1]), out
    assert len(lines) > 30
