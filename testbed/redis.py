"""A Redis server of the test's own: Debian's `redis-server`, never its service.

`RedisServer` runs `redis-server` in the foreground on a loopback port, its files in a
directory of its own, no persistence (the relay keeps nothing in Redis that must
survive it: presence, inboxes and rate-limit buckets). A test can stop, restart,
`kill -9` or freeze it like any other part; it keeps its port across restarts.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from .ports import free_port, wait_port
from .process import ChildProcess, TestbedError, wait_until

BINARY = "redis-server"


def available() -> bool:
    return shutil.which(BINARY) is not None or Path("/usr/bin/redis-server").exists()


def ping(port: int, timeout: float = 1.0) -> bool:
    """Whether the server on 127.0.0.1:`port` answers PING (RESP, no client library)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


class RedisServer(ChildProcess):
    """redis-server on 127.0.0.1:`port` (a free one by default), files in `workdir`."""

    name = "redis"

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        super().__init__(workdir / "redis.log")
        self.workdir = workdir
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, within: float = 15) -> None:
        binary = shutil.which(BINARY) or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise TestbedError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spawn(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--protected-mode", "yes", "--loglevel", "warning"],
            cwd=self.workdir,
        )  # fmt: skip
        wait_port(self.port, within, self.check_alive)
        wait_until(self._answers, within, "redis to answer PING")

    def _answers(self) -> bool:
        self.check_alive()
        return ping(self.port)

    def restart(self) -> None:
        self.stop()
        self.start()
