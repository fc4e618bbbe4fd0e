#!/usr/bin/env python3
"""Cluster benchmark (issue 15), loopback only: relay nodes on PostgreSQL and Redis.

Prints:
  1. cross-node forwarding: 1,000 device/controller pairs, every controller on node 0
     and every device on node 1, so every frame crosses nodes through Redis:
     frames/s and CPU per frame of both nodes plus Redis (closed loop, as
     relay_bench.py's phase 1);
  2. latency of cross-node frames at 2,000 frames/s offered, p50/p99 (one-way);
  3. failover: three nodes behind HAProxy, the real firmware (MicroPython unix port)
     and a controller through HAProxy; `--runs` times: kill -9 of the node the device
     is on, then time until a command succeeds again (new session, the controller
     reconnected if its node was the one killed), p50/p99; the killed node is started
     again between runs, and the device restarted (each failover starts with the
     firmware's reconnection backoff reset, as after 30 s of connection).

Run from the repository root: `.venv/bin/python benchmarks/cluster_bench.py`
(`--quick`: 100 pairs, 2 s phases, 5 failover runs; `--skip-failover`). PostgreSQL,
Redis and HAProxy are Debian's packages (scripts/setup installs them); the script
starts its own servers in temporary directories.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from relay_bench import (  # type: ignore[import-not-found]  # noqa: E402
    NO_LIMITS,
    Pairs,
    close_links,
    connect_pairs,
    raise_fd_limit,
    relay_latency,
    relay_throughput,
    seed_storage,
)

from relay_server.storage_pg import PostgresStorage  # noqa: E402
from testbed.accounts import new_account  # noqa: E402
from testbed.endpoints import Controller  # noqa: E402
from testbed.firmware import DeviceProcess, provision  # noqa: E402
from testbed.haproxy import HaProxy  # noqa: E402
from testbed.postgres import Postgres  # noqa: E402
from testbed.redis import RedisServer  # noqa: E402
from testbed.relay import RelayCluster, RelayProcess, until_command_works  # noqa: E402

CODE = "40961357"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def cross_node(work: Path, pg: Postgres, redis: RedisServer, args: argparse.Namespace
                     ) -> None:  # fmt: skip
    pairs = Pairs(100 if args.quick else 1000)
    seconds = 2.0 if args.quick else 5.0
    dsn = await pg.create_database("bench_forward")
    await seed_storage(PostgresStorage(dsn), pairs, [])
    cluster = RelayCluster(work / "forward", dsn, redis.url, count=2, args=NO_LIMITS,
                           log_level="WARNING")  # fmt: skip
    await asyncio.to_thread(cluster.start)
    try:
        links = await connect_pairs(cluster[0], pairs, device_relay=cluster[1])
        pids = [cluster[0].pid, cluster[1].pid, redis.pid]
        fps, cpu_us, client_us = await relay_throughput(links, pairs, seconds, pids)
        print(f"cross-node forwarded frames/s:       {fps:,.0f}   (goal >= 10,000)")
        print(f"  CPU per frame, 2 nodes + Redis:    {cpu_us:.1f} us, clients {client_us:.1f} us")
        for rate in (2000, 5000):
            p50, p99, sent, got = await relay_latency(links, pairs, rate, seconds)
            goal = "; goal p99 <= 10 ms" if rate == 2000 else ""
            print(f"cross-node latency @{rate:,} frames/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
                  f"({got}/{sent} frames{goal})")  # fmt: skip
        close_links(links)
    finally:
        await asyncio.to_thread(cluster.stop)


async def failover(work: Path, pg: Postgres, redis: RedisServer, args: argparse.Namespace
                   ) -> None:  # fmt: skip
    runs = 5 if args.quick else args.runs
    dsn = await pg.create_database("bench_failover")
    cluster = RelayCluster(work / "failover", dsn, redis.url, count=3, serve="behind-proxy",
                           args=("--cluster-grace", "2"), log_level="WARNING")  # fmt: skip
    await asyncio.to_thread(cluster.start)
    proxy = HaProxy(work / "haproxy", [n.port for n in cluster.nodes])
    proxy.start()
    device = DeviceProcess(work / "device", proxy.device_url)
    provision(device.state, CODE)
    ctl: Controller | None = None
    try:
        account = await new_account(proxy.base)
        ctl = await Controller(proxy.base, account.token).connect()
        device.start()
        await device.wait_log_async("relay connected")
        device_pub = await ctl.pair(device.device_id, CODE)
        session = await ctl.open_session(device.device_id, device_pub)
        assert (await session.command("relay1", "turn_on"))["ok"]
        took: list[float] = []
        for n in range(runs):
            if n:
                # A fresh start, so that each failover begins with the reconnection
                # backoff reset, as after 30 s of connection (the firmware's rule):
                # kills seconds apart would otherwise measure a growing backoff.
                device.stop()
                device.start()
                await device.wait_log_async("relay connected", count=1)
                ctl, _ = await until_command_works(
                    proxy.base, account.token, ctl, device.device_id, device_pub, within=60
                )
            victim = next(i for i, node in enumerate(cluster.nodes) if _holds_device(node))
            cluster[victim].kill()
            ctl, seconds = await until_command_works(
                proxy.base, account.token, ctl, device.device_id, device_pub, within=60
            )
            took.append(seconds)
            print(f"  run {n + 1:>2}: kill -9 of node {victim} -> command ok in {seconds:.2f} s")
            await asyncio.to_thread(cluster[victim].start)
            await asyncio.sleep(1.5)  # HAProxy sees it up again (2 checks of 500 ms)
        print(f"failover kill -9 -> first command:   p50 {statistics.median(took):.2f} s, "
              f"p99 {percentile(took, 0.99):.2f} s, max {max(took):.2f} s over {runs} runs "
              "(goal p99 <= 10 s)")  # fmt: skip
    finally:
        if ctl is not None:
            await ctl.close()
        device.stop()
        proxy.stop()
        await asyncio.to_thread(cluster.stop)


def _holds_device(node: RelayProcess) -> bool:
    if not node.alive:
        return False
    with urllib.request.urlopen(node.metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(r'homeseal_relay_connections\{role="device"\} (\S+)', text)
    return match is not None and float(match.group(1)) > 0


async def run(args: argparse.Namespace) -> None:
    hard = raise_fd_limit()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# cluster benchmark: {os.cpu_count()} CPUs (load average {load}), fd limit {hard}")
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        work = Path(tmp)
        pg = Postgres()
        redis = RedisServer(work / "redis")
        pg.start()
        redis.start()
        try:
            started = time.monotonic()
            await cross_node(work, pg, redis, args)
            if not args.skip_failover:
                await failover(work, pg, redis, args)
            print(f"# took {time.monotonic() - started:.0f} s")
        finally:
            redis.stop()
            pg.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 pairs, 2 s phases, 5 runs")
    parser.add_argument("--runs", type=int, default=20, help="failover runs (default 20)")
    parser.add_argument("--skip-failover", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
