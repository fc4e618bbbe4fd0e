"""Fixtures for the Cortex-M3 suite: the frozen firmware, and running one script on
the QEMU board and on the unix port with the same input, asserting the same output."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.qemu.harness import DATA_ADDR, QemuError, ensure_firmware, run_on_qemu
from tests.support import run_micropython

MPY = Path(__file__).parent / "mpy"
Field = bytes | str | int
RunBoth = Callable[..., str]


def pack_cases(cases: Sequence[Sequence[Field]]) -> bytes:
    """The blob mpy/cases.py reads: str as UTF-8, int as decimal ASCII."""
    width = len(cases[0]) if cases else 0
    out = bytearray(struct.pack(">HB", len(cases), width))
    for case in cases:
        assert len(case) == width, "every case needs the same number of fields"
        for field in case:
            raw = field.encode() if isinstance(field, str) else field
            if isinstance(field, int):
                raw = str(field).encode()
            assert isinstance(raw, bytes)
            out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


@pytest.fixture(scope="session")
def qemu_firmware() -> Path:
    try:
        return ensure_firmware()
    except QemuError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def run_both(qemu_firmware: Path, tmp_path: Path) -> RunBoth:
    """run_both(script_name, cases=(), timeout=120) -> stdout, identical on both ports."""

    def run(script: str, cases: Sequence[Sequence[Field]] = (), timeout: float = 120) -> str:
        blob = tmp_path / "cases.bin"
        blob.write_bytes(pack_cases(cases))
        body = (MPY / "cases.py").read_text() + (MPY / script).read_text()
        size = blob.stat().st_size
        board = f"import uctypes\nDATA = uctypes.bytearray_at({DATA_ADDR:#x}, {size})\n"
        unix = f"DATA = open({str(blob)!r}, 'rb').read()\n"
        on_qemu = run_on_qemu(board + body, timeout, data=blob)
        on_unix = run_micropython(unix + body, timeout=timeout)
        assert on_qemu == on_unix, "Cortex-M3 and unix port disagree"
        assert on_qemu.strip(), "script printed nothing"
        return on_qemu

    return run
