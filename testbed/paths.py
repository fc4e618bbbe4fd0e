"""Where things are: the checkout, the firmware, the build cache and the binaries it holds.

`scripts/setup` builds the MicroPython unix port and `mpy-cross` into the cache
(`HOMESEAL_CACHE`, default `~/.cache/homeseal`); each binary can also be named on
its own (`HOMESEAL_MICROPYTHON`, `HOMESEAL_MPY_CROSS`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
CACHE = Path(
    os.environ.get("HOMESEAL_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "homeseal"
)
MICROPYTHON = Path(os.environ.get("HOMESEAL_MICROPYTHON") or CACHE / "bin" / "micropython")
MPY_CROSS = Path(os.environ.get("HOMESEAL_MPY_CROSS") or CACHE / "bin" / "mpy-cross")
# The venv this interpreter runs in (its `hass` console script, for one).
VENV_BIN = Path(sys.executable).parent
# The newest Home Assistant's Python 3.14 tree (scripts/ha-newest) and its packages.
HA_NEWEST_TREE = CACHE / "ha-newest"
HA_NEWEST_SITE = HA_NEWEST_TREE / "opt/homeseal-venv/lib/python3.14/site-packages"


def micropython_env(extra_path: Iterable[Path] = (), firmware: Path = FIRMWARE) -> dict[str, str]:
    """Environment for a MicroPython process: the frozen asyncio, the firmware modules
    (the source tree, or a bundle's `lib`) and `extra_path` on its module path
    (MICROPYPATH)."""
    paths = [".frozen", str(firmware), *(str(p) for p in extra_path)]
    return {**os.environ, "MICROPYPATH": ":".join(paths)}
