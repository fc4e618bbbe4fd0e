"""HAProxy in front of relay nodes: Debian's `haproxy`, in the foreground, never its service.

`HaProxy` writes the configuration of docs/RELAY.md's deployment (without the TLS:
loopback tests) for the given node ports and runs `haproxy -db` with it: one frontend
on 127.0.0.1:`port`, the nodes as one backend, checked on `/healthz` every
`check_ms`, so a node that stops answering (killed, shutting down, cut off from
Redis, its database unreachable: 503) leaves the rotation within about two checks;
the websockets it carries are left alone (a node that is alive closes them itself when
it cannot route: a database outage must not drop them). Websockets are tunnelled
(`timeout tunnel`); `X-Forwarded-For` is added, so the nodes run `--behind-proxy`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from .ports import free_port, wait_port
from .process import ChildProcess, TestbedError

BINARY = "haproxy"


def available() -> bool:
    return shutil.which(BINARY) is not None or Path("/usr/sbin/haproxy").exists()


def config(port: int, nodes: Sequence[int], *, check_ms: int = 500, host: str = "127.0.0.1") -> str:
    """The configuration: `nodes` are the nodes' ports on `host`."""
    servers = "\n".join(
        f"    server node{i} {host}:{p} check inter {check_ms}ms fall 2 rise 2"
        for i, p in enumerate(nodes)
    )
    return f"""\
global
    maxconn 8000

defaults
    mode http
    option http-server-close
    option forwardfor
    option redispatch
    retries 2
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-request 5s

frontend relay
    bind {host}:{port}
    default_backend nodes

backend nodes
    balance leastconn
    option httpchk GET /healthz
    http-check expect status 200
{servers}
"""


class HaProxy(ChildProcess):
    """haproxy on 127.0.0.1:`port` in front of the nodes on `node_ports`."""

    name = "haproxy"

    def __init__(
        self, workdir: Path, node_ports: Sequence[int], *, port: int | None = None,
        check_ms: int = 500,
    ) -> None:  # fmt: skip
        super().__init__(workdir / "haproxy.log")
        self.workdir = workdir
        self.node_ports = list(node_ports)
        self.port = port or free_port()
        self.check_ms = check_ms

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def device_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/device"

    def start(self, within: float = 15) -> None:
        binary = shutil.which(BINARY) or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise TestbedError("haproxy is not installed (apt-get install haproxy)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(config(self.port, self.node_ports, check_ms=self.check_ms))
        self.spawn([binary, "-db", "-f", str(cfg)], cwd=self.workdir)
        wait_port(self.port, within, self.check_alive)
