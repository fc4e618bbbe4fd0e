"""The relay as its users run it: `python -m relay_server`, a process of its own.

`RelayProcess` serves plain HTTP (loopback tests), sits `--behind-proxy`, or serves
TLS with its own certificate; it keeps its port, database and key across restarts.
`ProxiedRelay` is a relay behind a TLS-terminating pipe, the production shape "behind
nginx": Home Assistant verifies the pipe's certificate, while the simulated devices of
those tests reach the relay itself with ws:// (the firmware's wss:// is tested against
a relay serving TLS, tests/firmware/test_tls.py).
`RelayCluster` is several relay processes, nodes of one cluster on PostgreSQL and Redis
(testbed.postgres, testbed.redis), to put behind testbed.haproxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from .endpoints import Controller
from .paths import ROOT
from .ports import free_port
from .process import ChildProcess, TestbedError, wait_until
from .tls import TlsFiles
from .tls_pipe import TlsPipe

# How the relay meets TLS: its own certificate, a proxy in front, plain HTTP (loopback
# tests only), or None: nothing on the command line (the environment decides).
Serve = TlsFiles | Literal["plain-http", "behind-proxy"] | None


def relay_command(workdir: Path, port: int, *args: str) -> list[str]:
    """`python -m relay_server` on 127.0.0.1:`port` with its database and key in `workdir`."""
    return [
        sys.executable, "-m", "relay_server", "--host", "127.0.0.1", "--port", str(port),
        "--db", str(workdir / "relay.sqlite3"), "--key-file", str(workdir / "relay.key"),
        *args,
    ]  # fmt: skip


def relay_environment(root: Path = ROOT, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without its HOMESEAL_RELAY_* settings, plus `env`; with the
    relay of another checkout (`root`) first on the module path."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("HOMESEAL_RELAY_")}
    if root != ROOT:
        out["PYTHONPATH"] = str(root)
    out.update(env or {})
    return out


def run_relay(
    workdir: Path, *args: str, port: int | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the relay's command line to its end (bad configurations, --help)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        relay_command(workdir, port or free_port(), *args),
        cwd=ROOT,
        env=relay_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_relay_expecting_failure(workdir: Path, *args: str, port: int | None = None) -> str:
    """Run the relay with a bad configuration: it must exit 2 at once. Returns stderr."""
    proc = run_relay(workdir, *args, port=port)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    return proc.stderr


# Per-address caps that every client of a test relay shares (they all come from
# 127.0.0.1): set out of the way unless `env` sets them. Environment variables, so a
# relay of an older checkout (`root`) that has no such option ignores them.
TEST_ENVIRONMENT = {
    "HOMESEAL_RELAY_MAX_UNAUTHENTICATED_PER_ADDRESS": "2048",
    "HOMESEAL_RELAY_HASH_JOBS_PER_ADDRESS": "64",
}


class RelayProcess(ChildProcess):
    """One relay on 127.0.0.1:`port` (a free one by default), state in `workdir`.

    `root` runs the relay_server of another checkout (benchmark comparisons);
    `url_host` is the host name clients use (a TLS certificate must name it);
    `log_level` None keeps the relay's default (INFO). Its /metrics listener is on
    127.0.0.1:`metrics_port` (a free one by default; `metrics_url`), and the per-address
    caps of TEST_ENVIRONMENT are lifted unless `env` sets them."""

    name = "relay"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        serve: Serve = "plain-http",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        root: Path = ROOT,
        log_level: str | None = None,
        url_host: str = "127.0.0.1",
        metrics_port: int | None = None,
    ) -> None:
        super().__init__(workdir / "relay.log")
        self.workdir = workdir
        self.port = port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.serve = serve
        self.args = list(args)
        self.env = {
            **TEST_ENVIRONMENT,
            "HOMESEAL_RELAY_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            **(env or {}),
        }
        self.root = root
        self.log_level = log_level
        self.url_host = url_host

    @property
    def db(self) -> Path:
        return self.workdir / "relay.sqlite3"

    @property
    def base(self) -> str:
        scheme = "https" if isinstance(self.serve, TlsFiles) else "http"
        return f"{scheme}://{self.url_host}:{self.port}"

    @property
    def ws_base(self) -> str:
        return self.base.replace("http", "ws", 1)

    @property
    def metrics_url(self) -> str:
        """Its /metrics, on the metrics listener (a relay of a checkout from before that
        listener, `root`, serves it on the public one)."""
        if (self.root / "relay_server" / "server.py").exists():
            return f"http://127.0.0.1:{self.metrics_port}/metrics"
        return self.base + "/metrics"

    @property
    def device_url(self) -> str:
        return self.ws_base + "/ws/device"

    def ssl_context(self) -> ssl.SSLContext | None:
        """What trusts this relay's certificate (None: it serves plain HTTP)."""
        if isinstance(self.serve, TlsFiles):
            return ssl.create_default_context(cafile=self.serve.ca)
        return None

    def command(self) -> list[str]:
        args = [] if self.log_level is None else ["--log-level", self.log_level]
        match self.serve:
            case TlsFiles(cert=cert, key=key):
                args += ["--tls-cert", str(cert), "--tls-key", str(key)]
            case "plain-http" | "behind-proxy":
                args.append(f"--{self.serve}")
        return relay_command(self.workdir, self.port, *args, *self.args)

    def start(self, within: float = 30) -> None:
        """Start it and wait until it answers /healthz."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spawn(self.command(), cwd=self.root, env=relay_environment(self.root, self.env))

        def healthy() -> bool:
            self.check_alive()
            with urllib.request.urlopen(
                self.base + "/healthz", timeout=2, context=self.ssl_context()
            ) as resp:
                return bool(resp.status == 200)

        wait_until(healthy, within, f"the relay to answer {self.base}/healthz")

    def restart(self) -> None:
        """Stop and start again: same port, database and key; its in-memory state (rate
        limits, connections) starts afresh."""
        self.stop()
        self.start()

    def relay_key(self) -> str:
        """The relay's static public key, hex, as its API publishes it."""
        with urllib.request.urlopen(
            self.base + "/api/v1/relay", timeout=5, context=self.ssl_context()
        ) as resp:
            return str(json.loads(resp.read())["relay_key"])


def cluster_args(database: str, redis: str, node: str) -> list[str]:
    """The command-line options of one node of a cluster."""
    return ["--database", database, "--redis", redis, "--node-name", node]


def write_key(path: Path) -> None:
    """A relay key file (mode 0600): the nodes of a cluster share one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32).hex().encode() + b"\n")
    finally:
        os.close(fd)


class RelayCluster:
    """`count` relay processes, nodes of one cluster: one PostgreSQL database
    (`database`, a URL) and one Redis (`redis`, a URL), one relay key, each node in
    `workdir`/node<i> on a port of its own. `serve` as for RelayProcess ("behind-proxy"
    for nodes behind testbed.haproxy); `args` and `env` go to every node, and
    `node_args` adds per-node options (e.g. another Redis URL for one of them)."""

    def __init__(
        self,
        workdir: Path,
        database: str,
        redis: str,
        *,
        count: int = 3,
        serve: Serve = "plain-http",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        node_args: Mapping[int, Sequence[str]] | None = None,
        log_level: str | None = None,
        root: Path = ROOT,
    ) -> None:
        self.workdir = workdir
        key = workdir / "relay.key"
        write_key(key)
        self.nodes: list[RelayProcess] = []
        for i in range(count):
            node_dir = workdir / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            (node_dir / "relay.key").write_bytes(key.read_bytes())
            (node_dir / "relay.key").chmod(0o600)
            redis_url = redis
            extra = list((node_args or {}).get(i, ()))
            if "--redis" in extra:  # a node of its own Redis URL (through a pipe, say)
                at = extra.index("--redis")
                redis_url = extra[at + 1]
                del extra[at : at + 2]
            self.nodes.append(
                RelayProcess(
                    node_dir,
                    serve=serve,
                    args=[*cluster_args(database, redis_url, f"node{i}"), *args, *extra],
                    env=env,
                    log_level=log_level,
                    root=root,
                )
            )

    def __getitem__(self, i: int) -> RelayProcess:
        return self.nodes[i]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RelayCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProxiedRelay:
    """A relay `--behind-proxy` and a TLS-terminating pipe in front of it.

    `url` is what Home Assistant uses (https through the pipe, verified with `tls`);
    `device_url` is the relay's own plain ws:// device endpoint. Restarting the relay
    keeps the pipe: clients see a relay outage, not a new address."""

    def __init__(
        self,
        workdir: Path,
        tls: TlsFiles,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.tls = tls
        self.relay = RelayProcess(
            workdir, serve="behind-proxy", args=args, env=env, log_level="WARNING"
        )
        self._pipes = 0
        self.pipe = self.open_pipe(start=False)

    @property
    def url(self) -> str:
        return self.pipe.base

    @property
    def device_url(self) -> str:
        return self.relay.device_url

    def open_pipe(self, *, start: bool = True) -> TlsPipe:
        """Another TLS front for the same relay (the relay at a second address)."""
        log = self.workdir / (f"tls-pipe-{self._pipes}.log" if self._pipes else "tls-pipe.log")
        self._pipes += 1
        pipe = TlsPipe(log, self.relay.port, server_tls=self.tls)
        if start:
            pipe.start()
        return pipe

    def start(self) -> None:
        """Start what is not running: the relay, then the pipe."""
        if not self.relay.alive:
            self.relay.start()
        if not self.pipe.alive:
            self.pipe.start()

    def stop_relay(self) -> None:
        self.relay.stop()

    def restart(self) -> None:
        self.relay.restart()

    def stop(self) -> None:
        self.relay.stop()
        self.pipe.stop()


async def until_command_works(
    base: str,
    token: str,
    controller: Controller,
    device_id: bytes,
    device_pub: bytes,
    *,
    within: float = 60.0,
    attempt_s: float = 3.0,
) -> tuple[Controller, float]:
    """After a fault: until a command through a new session succeeds, reconnecting the
    controller (with its key) to `base` whenever its connection has gone. Returns the
    controller that succeeded and the seconds it took."""
    started = time.monotonic()
    ctl = controller
    while True:
        if time.monotonic() - started > within:
            raise TestbedError(f"no command succeeded within {within:g} s of the fault")
        try:
            if ctl.link is None or ctl.link.ws.closed or ctl.closed_code is not None:
                await ctl.close()
                ctl = await Controller(base, token, key=ctl.key).connect()
            ctl.drain()  # answers to an earlier attempt would confuse this one
            async with asyncio.timeout(attempt_s):
                session = await ctl.open_session(device_id, device_pub)
                if (await session.command("relay1", "turn_on"))["ok"]:
                    return ctl, time.monotonic() - started
        except Exception:  # any failure of this attempt: try again
            await asyncio.sleep(0.25)
