"""Shared helpers for the test suites: running MicroPython scripts, the shared vectors,
pairing errors. Where things are comes from testbed.paths (re-exported here).

Every suite that runs firmware code on the MicroPython unix port goes through
`run_micropython`, so the binary, its module path and its heap size are chosen
in one place.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeseal_protocol.errors import PairingError, PairingFailure
from testbed.paths import CACHE, FIRMWARE, MICROPYTHON, MPY_CROSS, ROOT, micropython_env

__all__ = [
    "CACHE",
    "FIRMWARE",
    "MICROPYTHON",
    "MPY_CROSS",
    "ROOT",
    "SHARED_VECTORS",
    "load_shared_vectors",
    "micropython_env",
    "micropython_path",
    "raises_pairing",
    "run_micropython",
    "shared_vector_path",
]

SHARED_VECTORS = Path(os.environ.get("HOMESEAL_VECTORS") or ROOT.parent / "shared" / "vectors")


def micropython_path() -> Path:
    """The MicroPython unix-port binary; fails (not skips) when setup did not build it."""
    if not MICROPYTHON.is_file():
        pytest.fail(f"MicroPython unix port not found at {MICROPYTHON}: run scripts/setup")
    return MICROPYTHON


def run_micropython(
    script: Path | str,
    *args: str,
    heapsize: str = "8m",
    timeout: float = 300,
    extra_path: list[Path] | None = None,
    stdin: bytes | None = None,
    firmware: Path = FIRMWARE,
) -> str:
    """Run a script file (Path) or source text (str) on the unix port; return stdout.

    A non-zero exit fails the calling test with MicroPython's output attached.
    """
    cmd = [str(micropython_path()), "-X", f"heapsize={heapsize}"]
    cmd += [str(script)] if isinstance(script, Path) else ["-c", script]
    proc = subprocess.run(
        [*cmd, *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=micropython_env(extra_path or (), firmware),
        check=False,
    )
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        pytest.fail(
            f"MicroPython exited {proc.returncode}\n--- stdout ---\n{out[-4000:]}\n"
            f"--- stderr ---\n{proc.stderr.decode(errors='replace')[-4000:]}"
        )
    return out


def shared_vector_path(name: str) -> Path:
    """Path of a file in ../shared/vectors; skips, saying so, when shared/ is absent."""
    path = SHARED_VECTORS / name
    if not path.is_file():
        pytest.skip(f"shared vector file {path} is not present beside this checkout")
    return path


def load_shared_vectors(name: str) -> Any:
    return json.loads(shared_vector_path(name).read_text())


@contextlib.contextmanager
def raises_pairing(
    failure: PairingFailure, match: str | None = None
) -> Iterator[pytest.ExceptionInfo[PairingError]]:
    """`pytest.raises(PairingError)` that also checks the error's `failure`."""
    with pytest.raises(PairingError, match=match) as info:
        yield info
    assert info.value.failure is failure, f"{info.value.failure} is not {failure}"
