"""Loopback ports: a free one, whether one is taken, waiting for one to listen."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from .process import TestbedError

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick; a race-free bind is not promised)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`. TIME_WAIT leftovers do not count:
    the servers started here bind with SO_REUSEADDR too."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
        return False


def wait_port(port: int, within: float = 30, check: Callable[[], None] | None = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`; `check` runs between
    attempts (a process's `check_alive`, so a crash ends the wait at once)."""
    deadline = time.monotonic() + within
    while True:
        if check is not None:
            check()
        try:
            socket.create_connection((HOST, port), timeout=1).close()
        except OSError:
            if time.monotonic() > deadline:
                raise TestbedError(f"nothing listens on {HOST}:{port} after {within:g} s") from None
            time.sleep(0.05)
        else:
            return
