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


def test_mypy_strict_on_every_cpython_package() -> None:
    proc = _run(
        "mypy",
        "homeseal_protocol",
        "custom_components/homeseal",
        "relay_server",
        "testbed",
        "tools",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_on_the_newest_home_assistant() -> None:
    """The integration against the newest HA's own types, on Python 3.14 (its tree)."""
    proc = subprocess.run(
        [
            str(ROOT / "scripts" / "ha-newest"),
            "mypy",
            "--python-version",
            "3.14",
            "homeseal_protocol",
            "custom_components/homeseal",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
