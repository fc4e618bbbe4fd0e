#!/usr/bin/env python3
"""Connection cost benchmark (issue 11: R1), loopback only.

For the relay of this checkout (or --relay-root's), and with --compare-with DIR for
another checkout's too (e.g. /work/base, the relay before the fixes), prints the
relay's RSS per connection, in KiB:

  - direct TLS (`--tls-cert/--tls-key`) and behind a proxy (`--behind-proxy`: plain
    HTTP, which is what the relay serves when nginx terminates TLS);
  - for connections that are upgraded but not authenticated (in the challenge-response,
    measured within its 10 s deadline) and for authenticated idle device connections;

and then a flood: --flood TLS connections that upgrade and never authenticate, all
gone after the relay's deadlines, and the relay's RSS before, at the peak and after,
with malloc_trim (the default) and without (`--no-malloc-trim`; a relay from before
it has none).

The benchmark's own TLS client reads into small buffers (asyncio's 256 KiB default per
connection would cost the client what it measures at the relay). The relay's
unauthenticated-connection caps are lifted (testbed.relay.TEST_ENVIRONMENT) so that
every connection is accepted.

    .venv/bin/python benchmarks/conn_bench.py --compare-with /work/base
    .venv/bin/python benchmarks/conn_bench.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.sslproto
import os
import resource
import ssl
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from procstat import rss_kib  # type: ignore[import-not-found]  # noqa: E402

from relay_server.storage_sqlite import SqliteStorage  # noqa: E402
from testbed.endpoints import ROLE_DEVICE, Endpoint  # noqa: E402
from testbed.relay import RelayProcess, Serve  # noqa: E402
from testbed.tls import TlsFiles, make_tls  # noqa: E402
from testbed.wsclient import WsRelayClient  # noqa: E402

asyncio.sslproto.SSLProtocol.max_size = 16 * 1024  # the client side's buffers


class Unauthenticated(WsRelayClient):
    """Upgrades, reads the AUTH_CHALLENGE and never answers it."""

    def _auth(self, frame: bytes) -> None:
        if not self.ready.done():
            self.ready.set_result(None)


async def open_many(
    relay: RelayProcess,
    endpoints: list[Endpoint],
    context: ssl.SSLContext | None,
    authenticate: bool,
    limit: int = 64,
) -> list[WsRelayClient]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(limit)
    kind = WsRelayClient if authenticate else Unauthenticated

    async def one(endpoint: Endpoint) -> WsRelayClient:
        async with sem:
            _, client = await loop.create_connection(
                lambda: kind(endpoint),
                "127.0.0.1",
                relay.port,
                ssl=context,
                server_hostname="127.0.0.1" if context else None,
            )
            await asyncio.wait_for(client.ready, 30)
            return client

    return list(await asyncio.gather(*(one(e) for e in endpoints)))


def close_all(clients: list[WsRelayClient]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


async def seed(path: Path, endpoints: list[Endpoint]) -> None:
    storage = SqliteStorage(path)
    await storage.open()
    try:
        now = int(time.time())
        for e in endpoints:
            await storage.register_device(e.id, e.pub, now)
    finally:
        await storage.close()


def start(
    workdir: Path, root: Path, serve: Serve, env: Mapping[str, str] | None = None
) -> RelayProcess:
    relay = RelayProcess(workdir, root=root, serve=serve, env=env, log_level="ERROR")
    relay.start()
    return relay


async def per_connection(root: Path, work: Path, tls: TlsFiles, count: int, name: str) -> None:
    """Each figure from a relay of its own: freed memory is reused, so a second batch on
    the same relay would seem cheaper than it is."""
    endpoints = [Endpoint(ROLE_DEVICE) for _ in range(count + 20)]
    ways: tuple[tuple[str, Serve], ...] = (("direct TLS", tls), ("behind a proxy", "behind-proxy"))
    for label, serve in ways:
        figures = {}
        for authenticate in (False, True):
            workdir = work / f"{label.replace(' ', '-')}-{authenticate}"
            workdir.mkdir()
            await seed(workdir / "relay.sqlite3", endpoints)
            relay = await asyncio.to_thread(start, workdir, root, serve)
            context = relay.ssl_context()
            try:
                pid = relay.pid
                # Warm up (the first connections allocate what every later one reuses).
                warm = await open_many(relay, endpoints[:20], context, authenticate=True)
                await asyncio.sleep(1.0)
                base = rss_kib(pid)
                held = await open_many(relay, endpoints[20:], context, authenticate)
                await asyncio.sleep(0.5 if not authenticate else 1.0)
                figures[authenticate] = (rss_kib(pid) - base) / count
                close_all([*held, *warm])
            finally:
                relay.stop()
        print(f"[{name}] {label:<15} RSS per connection: upgraded, not authenticated "
              f"{figures[False]:6.1f} KiB; authenticated device {figures[True]:6.1f} KiB "
              f"({count} connections)")  # fmt: skip


async def flood(
    root: Path, work: Path, tls: TlsFiles, count: int, name: str, *, trim: bool
) -> None:
    workdir = work / f"flood-{trim}"
    workdir.mkdir()
    # An environment variable: a relay from before malloc_trim ignores it.
    env = {} if trim else {"HOMESEAL_RELAY_NO_MALLOC_TRIM": "1"}
    relay = await asyncio.to_thread(start, workdir, root, tls, env)
    context = relay.ssl_context()
    try:
        pid = relay.pid
        warm = await open_many(relay, [Endpoint(ROLE_DEVICE) for _ in range(20)], context, True)
        await asyncio.sleep(1.0)
        before = rss_kib(pid)
        peak = before
        clients: list[WsRelayClient] = []
        for _ in range(0, count, 500):  # in waves: the relay's 10 s auth deadline runs
            wave = await open_many(relay, [Endpoint(ROLE_DEVICE) for _ in range(500)], context,
                                   authenticate=False)  # fmt: skip
            clients += wave
            peak = max(peak, rss_kib(pid))
        peak = max(peak, rss_kib(pid))
        close_all(clients)
        # Past the auth deadline and the relay's trim interval (10 s each).
        await asyncio.sleep(22.0)
        after = rss_kib(pid)
        label = "with malloc_trim" if trim else "without malloc_trim"
        print(f"[{name}] flood of {count:,} TLS connections {label:<20}: RSS {before / 1024:6.1f}"
              f" -> peak {peak / 1024:6.1f} -> after {after / 1024:6.1f} MiB "
              f"(kept {(after - before) / 1024:+.1f} MiB)")  # fmt: skip
        close_all(warm)
    finally:
        relay.stop()


async def measure(root: Path, args: argparse.Namespace) -> None:
    name = root.name or str(root)
    with tempfile.TemporaryDirectory(prefix="conn-bench-") as tmp:
        work = Path(tmp)
        tls = make_tls(work / "tls")
        await per_connection(root, work, tls, args.connections, name)
        has_trim = (root / "relay_server" / "guard.py").exists()
        for trim in (True, False) if has_trim else (False,):
            await flood(root, work, tls, args.flood, name, trim=trim)


async def run(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# connection benchmark: {os.cpu_count()} CPUs, load average {load}")
    trees = [args.relay_root.resolve()]
    if args.compare_with is not None:
        trees.insert(0, args.compare_with.resolve())
    for root in trees:
        await measure(root, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relay-root", type=Path, default=ROOT, metavar="DIR")
    parser.add_argument("--compare-with", type=Path, metavar="DIR",
                        help="also measure the relay of this checkout (first)")  # fmt: skip
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--flood", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 connections, flood of 500")
    args = parser.parse_args()
    if args.quick:
        args.connections, args.flood = 200, 500
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
