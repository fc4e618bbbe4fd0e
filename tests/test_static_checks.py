"""The CPython side stays ruff-clean and strictly typed: checked on every run."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_check_is_clean() -> None:
    proc = _run("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean() -> None:
    proc = _run("ruff", "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_on_component_relay_and_tools() -> None:
    proc = _run("mypy", "custom_components/homeseal", "relay_server", "tools")
    assert proc.returncode == 0, proc.stdout + proc.stderr
