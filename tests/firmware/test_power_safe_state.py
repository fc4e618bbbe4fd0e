"""L5: the device's state survives a power cut at any write step, on FAT and littlefs
alike (firmware/homeseal/store.py, bootstate.py; firmware/README.md "State files").

tests/firmware/mpy/powercut.py runs on the MicroPython unix port: for each thing the
device writes (its first boot, the adoption of the provisioning tool's files, older
firmware's single files, an attempt counted, a pairing, a claim, an unpairing, a long
press, the lockout cleared at power-on, a lost or a corrupt counter failing closed) it
cuts the power at every write step in turn, boots again, and checks that each record is
the old or the new one and that the boot is never weaker (no pairing window neither
state has, never more attempts left); a lost or corrupt counter must boot as a full one
with no window, never as zero failures. Three file systems: the unix port's own files
behind a shim of every open/write/flush/close/remove/rename (unflushed data lost, a
flush torn in half), and MicroPython's FAT and littlefs drivers on a RAM block device
cut before any block write or erase, or halfway through one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_micropython

pytestmark = pytest.mark.micropython

SCRIPT = Path(__file__).parent / "mpy" / "powercut.py"
SCENARIOS = 13


@pytest.mark.parametrize("fs", ["posix", "fat", "lfs"])
def test_l5_power_cut_at_every_write_step(fs: str, tmp_path: Path) -> None:
    out = run_micropython(SCRIPT, fs, str(tmp_path), heapsize="4m", timeout=300)
    lines = out.strip().splitlines()
    assert lines[-1] == "done", out
    failures = [line for line in lines if line.startswith("FAIL ")]
    assert not failures, "\n".join(failures)
    ok = [line[3:] for line in lines if line.startswith("ok ")]
    steps = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in ok}
    assert len(steps) == SCENARIOS, out
    # Every scenario wrote something, and was cut at each of its steps (littlefs can
    # write a small record in one block program).
    assert min(steps.values()) >= 1, steps
