"""Smoke run of benchmarks/soak.py, so the soak script cannot rot: the real relay,
about 20 devices (one of them the real firmware on the MicroPython unix port, two
paired over SPAKE2+), one HA-side client, ~6 s of commands and state pushes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import MICROPYTHON, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.micropython]


def test_soak_smoke(tmp_path: Path) -> None:
    assert MICROPYTHON.is_file(), f"MicroPython unix port not found at {MICROPYTHON}"
    figures = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--devices", "20", "--firmware", "1",
         "--paired", "2", "--minutes", "0.1", "--command-rate", "50", "--state-rate", "50",
         "--json", str(figures)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "ERROR" not in output, output
    result = json.loads(figures.read_text())
    assert result["errors"] == 0
    # Every command offered got its result through the relay and both Noise sessions.
    assert result["commands_sent"] >= 250, result
    assert result["commands_ok"] == result["commands_sent"], result
    assert result["firmware_commands"] > 0, result
    assert result["states"] >= 250, result
    assert result["frames_per_s"] > 100, result
    assert result["drops"] == {}, result
    assert result["closes"] == {}, result
    assert 0 < result["rtt_p50_ms"] <= result["rtt_p99_ms"] < 1000, result
    assert result["rss_start_kib"] > 0, result
    assert result["rss_end_kib"] > 0, result
