"""Running the real relay process (`python -m relay_server`) for the process-level tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def relay_command(tmp_path: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "relay_server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(tmp_path / "relay.sqlite3"),
        "--key-file",
        str(tmp_path / "relay.key"),
        *extra,
    ]


def run_relay_expecting_failure(tmp_path: Path, *args: str, port: int | None = None) -> str:
    """Run the relay with a bad configuration; it must exit 2 quickly. Returns stderr."""
    cmd = relay_command(tmp_path, port or free_port(), *args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESEAL_RELAY_")}
    proc = subprocess.run(
        cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=30, env=env
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    return proc.stderr


class RelayProcess:
    def __init__(
        self,
        tmp_path: Path,
        *extra: str,
        tls_ca: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = env or {}
        self.tmp_path = tmp_path
        self.port = free_port()
        self.extra = extra
        scheme = "https" if tls_ca else "http"
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.ws_base = self.base.replace("http", "ws", 1)
        self.ssl: ssl.SSLContext | bool = True
        if tls_ca is not None:
            self.ssl = ssl.create_default_context(cafile=str(tls_ca))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp_path / "relay.log"

    async def start(self, http: aiohttp.ClientSession, wait_s: float = 30) -> None:
        cmd = relay_command(self.tmp_path, self.port, *self.extra)
        if not any(a in self.extra for a in ("--tls-cert", "--behind-proxy")) and not self.env:
            cmd.append("--plain-http")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESEAL_RELAY_")}
        env.update(self.env)
        with self.log_path.open("ab") as log:
            # Popen only forks; the readiness wait below polls without blocking.
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=env)  # noqa: ASYNC220
        deadline = time.monotonic() + wait_s
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"relay exited {self.proc.returncode}:\n{self.log()}")
            try:
                async with http.get(self.base + "/healthz", ssl=self.ssl) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"relay did not become healthy:\n{self.log()}")
            await asyncio.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    async def wait(self, wait_s: float = 15) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + wait_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("relay did not exit in time")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        return await self.wait()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
