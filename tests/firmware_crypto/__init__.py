"""Tests of the firmware's cryptographic primitives (firmware/homeseal/*.py).

The same modules run twice: on the real MicroPython unix port (Wycheproof files and RFC
examples) and under CPython through tests/cpython_shim (an oracle comparison against
`cryptography` and the standard library).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from tests.support import FIRMWARE

MPY_SCRIPTS = Path(__file__).resolve().parent / "mpy"
CPYTHON_SHIM = Path(__file__).resolve().parent.parent / "cpython_shim"


def import_firmware(name: str) -> ModuleType:
    """Import firmware module `homeseal.<name>` under CPython, with the micropython shim."""
    for path in (str(CPYTHON_SHIM), str(FIRMWARE)):
        if path not in sys.path:
            sys.path.append(path)
    return importlib.import_module(f"homeseal.{name}")
