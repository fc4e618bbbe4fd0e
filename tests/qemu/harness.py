"""Run MicroPython scripts on the QEMU Cortex-M3 port (MPS2-AN385) through its raw REPL.

QEMU's UART is the process's stdin/stdout (`-serial stdio`); the CMSDK UART has
no FIFO and QEMU hands it a character only when it can take one, so writing a
whole script into the pipe is flow-controlled and loses nothing. One QEMU
process boots in a fraction of a second; `exec` soft-resets the board first, so
every script starts from a fresh heap, as after a reset on a board.

With `icount=True` QEMU runs with `-icount shift=0`: virtual time advances one
nanosecond per guest instruction, so the frozen `qemu_cycles` timer gives
counts that do not depend on host load.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path

from tests.support import CACHE, ROOT

FIRMWARE_ELF = Path(os.environ.get("HOMESEAL_QEMU_FIRMWARE") or CACHE / "qemu" / "firmware.elf")
SETUP_QEMU = ROOT / "scripts" / "setup-qemu"
MPY_SRC = CACHE / "micropython-src"  # scripts/setup unpacks MicroPython's source here
QEMU = "qemu-system-arm"

_RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
# Where a data blob is loaded into the board's RAM (4 MiB at 0; the firmware and its
# heap take the first ~330 KiB, the stack the top): scripts read it in place
# with uctypes.bytearray_at, which is faster than the UART and costs no heap.
DATA_ADDR = 0x200000
DATA_MAX = 0x1F0000


class QemuError(Exception):
    """The board did not answer as the raw REPL protocol says (hang, crash, exit)."""


class ScriptError(Exception):
    """The script raised on the board; `traceback` is what MicroPython printed."""

    def __init__(self, stdout: str, traceback: str) -> None:
        super().__init__(traceback.strip().splitlines()[-1] if traceback.strip() else "error")
        self.stdout = stdout
        self.traceback = traceback


def ensure_firmware() -> Path:
    """Build (or confirm up to date) the frozen firmware; return the ELF path.

    scripts/setup-qemu returns at once when the frozen sources are unchanged and
    otherwise rebuilds in seconds, so a test never runs stale firmware code.
    """
    if "HOMESEAL_QEMU_FIRMWARE" not in os.environ:
        proc = subprocess.run(
            [str(SETUP_QEMU)], capture_output=True, text=True, timeout=900, check=False
        )
        if proc.returncode != 0:
            raise QemuError(f"scripts/setup-qemu failed:\n{proc.stdout}\n{proc.stderr}")
    if not FIRMWARE_ELF.is_file():
        raise QemuError(f"QEMU firmware not found at {FIRMWARE_ELF}: run scripts/setup-qemu")
    if shutil.which(QEMU) is None:
        raise QemuError(f"{QEMU} not installed: run scripts/setup-qemu")
    return FIRMWARE_ELF


class QemuBoard:
    """One qemu-system-arm process with MicroPython in raw-REPL mode."""

    def __init__(
        self, elf: Path | None = None, *, icount: bool = False, data: Path | None = None
    ) -> None:
        cmd = [
            QEMU,
            "-machine", "mps2-an385",
            "-nographic",
            "-monitor", "none",
            "-semihosting",
            "-serial", "stdio",
            "-kernel", str(elf or FIRMWARE_ELF),
        ]  # fmt: skip
        if icount:
            # One instruction per virtual ns; no sleeping, so idle time is not counted.
            cmd += ["-icount", "shift=0,sleep=off"]
        if data is not None:
            if data.stat().st_size > DATA_MAX:
                raise QemuError(f"data blob {data} is larger than {DATA_MAX} bytes")
            cmd += ["-device", f"loader,file={data},addr={DATA_ADDR:#x},force-raw=on"]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._in = self._proc.stdin
        self._out = self._proc.stdout.fileno()
        self._buf = b""
        try:
            self._read_until(b">>> ", 30)
            self._write(b"\r\x01")
            self._read_until(_RAW_PROMPT, 30)
        except BaseException:
            self.close()
            raise
        self._fresh = True

    def __enter__(self) -> QemuBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def _write(self, data: bytes) -> None:
        try:
            self._in.write(data)
            self._in.flush()
        except BrokenPipeError as exc:
            raise QemuError(f"QEMU exited: {self._stderr()}") from exc

    def _stderr(self) -> str:
        if self._proc.poll() is None or self._proc.stderr is None:
            return ""
        return self._proc.stderr.read().decode(errors="replace")

    def _read_until(self, marker: bytes, timeout: float) -> bytes:
        """Everything up to and including marker; what follows stays buffered."""
        deadline = time.monotonic() + timeout
        while marker not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QemuError(f"timeout waiting for {marker!r}; got {self._buf[-2000:]!r}")
            ready, _, _ = select.select([self._out], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._out, 65536)
            if not chunk:
                raise QemuError(f"QEMU exited ({self._stderr()}); got {self._buf[-2000:]!r}")
            self._buf += chunk
        i = self._buf.index(marker) + len(marker)
        out, self._buf = self._buf[:i], self._buf[i:]
        return out

    def soft_reset(self) -> None:
        """Ctrl-D at the raw prompt: fresh heap and module state."""
        self._write(b"\x04")
        self._read_until(b"soft reboot\r\n", 30)
        self._read_until(_RAW_PROMPT, 30)

    def exec(self, source: str, timeout: float = 120, *, reset: bool = True) -> str:
        """Run source on the board; return its stdout (CRLF as LF).

        Raises ScriptError when the script raises, QemuError on a hang or crash.
        """
        if reset and not self._fresh:
            self.soft_reset()
        self._fresh = False
        self._write(source.encode() + b"\x04")
        self._read_until(b"OK", timeout)
        out = self._read_until(b"\x04", timeout)[:-1].decode(errors="replace")
        err = self._read_until(b"\x04", timeout)[:-1].decode(errors="replace")
        self._read_until(b">", timeout)
        out = out.replace("\r\n", "\n")
        if err:
            raise ScriptError(out, err.replace("\r\n", "\n"))
        return out


def run_on_qemu(
    source: str, timeout: float = 120, *, icount: bool = False, data: Path | None = None
) -> str:
    """Run one script on a freshly booted board; return its stdout."""
    with QemuBoard(icount=icount, data=data) as board:
        return board.exec(source, timeout)
