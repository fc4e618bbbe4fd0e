"""What the Cortex-M3 build is: 32-bit viper and small ints, no time module, the
board-sized heap, and every crypto/protocol module frozen in and importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.qemu.harness import MPY_SRC, ScriptError, run_on_qemu

pytestmark = pytest.mark.qemu

PROBE = """
import gc, micropython, sys
@micropython.viper
def vmul(a: int, b: int) -> int:
    return a * b
print(vmul(0x10000, 0x10000), vmul(0x7FFFFFFF, 0x7FFFFFFF), sys.maxsize)
try:
    import time
    print("time")
except ImportError:
    print("no time")
import os
print(hasattr(os, "urandom"))
gc.collect()
print(gc.mem_free() + gc.mem_alloc())
"""


def _frozen_modules() -> list[str]:
    """The firmware modules the build froze: tests/qemu/manifest.py as MicroPython's
    own tools/manifestfile.py reads it (in freeze mode, as scripts/setup-qemu does)."""
    tools = str(MPY_SRC / "tools")
    if tools not in sys.path:
        sys.path.append(tools)
    import manifestfile  # type: ignore[import-not-found]  # noqa: PLC0415  (on the path above)

    paths = {"MPY_DIR": str(MPY_SRC), "MPY_LIB_DIR": None, "PORT_DIR": None, "BOARD_DIR": None}
    m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, paths)
    m.execute(str(Path(__file__).parent / "manifest.py"))
    targets = [str(f.target_path) for f in m.files()]
    return [t[9:-3] for t in targets if t.startswith("homeseal/") and t != "homeseal/__init__.py"]


def test_port_facts(qemu_firmware: Path) -> None:
    lines = run_on_qemu(PROBE).splitlines()
    # Viper arithmetic wraps at 32 bits here (64 on the unix port); small ints are 31-bit.
    assert lines[0] == "0 1 2147483647"
    assert lines[1] == "no time"
    assert lines[2] == "False"  # no os.urandom: randomness is the caller's to provide
    assert 120_000 < int(lines[3]) <= 143_360  # the 140 KiB heap setup-qemu builds with


def test_frozen_modules_import(qemu_firmware: Path) -> None:
    modules = _frozen_modules()
    assert {"ct", "kdf", "x25519", "chachapoly", "p256", "spake2plus", "noise"} <= set(modules)
    script = "import sys\n" + "".join(
        f"import homeseal.{m}\nprint('{m}', sys.modules['homeseal.{m}'].__file__)\n"
        for m in modules
    )
    out = run_on_qemu(script).splitlines()
    # The board has no filesystem: each module comes from the frozen image.
    assert out == [f"{m} homeseal/{m}.py" for m in modules]


def test_script_errors_are_reported(qemu_firmware: Path) -> None:
    # The harness must surface a failure on the board, not pass silently.
    with pytest.raises(ScriptError, match="ZeroDivisionError"):
        run_on_qemu("print(1)\n1 // 0\n")
