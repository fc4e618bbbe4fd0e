#!/usr/bin/env python3
"""Relay benchmark (issue 3), loopback only.

Prints:
  1. forwarded frames/s: 1,000 device/controller pairs ping-ponging SESSION frames
     with 200-byte payloads (closed loop, a few frames in flight per pair);
  2. latency p50/p99 of frames through the relay at a fixed offered load of
     5,000 frames/s (open loop; one-way, client send → client receive, so it is an
     upper bound of what the relay adds);
  3. relay RSS per idle authenticated device connection at 1,000 and 10,000;
  4. the same forwarding run through Mosquitto (MQTT 3.1.1, QoS 0, same pair count,
     same 211-byte frames) and the relay/Mosquitto throughput ratio.

Phases 1 and 2 run twice: on uvloop (the relay's default) and on asyncio's loop
(`--event-loop asyncio`). Mosquitto is Debian's `mosquitto` (scripts/setup installs it).

Run from the repository root: `.venv/bin/python benchmarks/relay_bench.py`
(`--quick` for a smoke run with fewer pairs and shorter phases).

`--relay-root DIR` runs the relay of another checkout (`python -m relay_server`
with that directory as working directory and PYTHONPATH); `--compare-with DIR`
measures only the forwarding run, alternating this tree's relay (or
--relay-root's) with DIR's for `--rounds` rounds each, and prints the median
relay CPU per forwarded frame of both and their ratio — a comparison made in
one run, on one machine load. Both relays read the same database, seeded through
the relay's storage interface.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import secrets
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import aiohttp  # noqa: E402
from procstat import cpu_seconds, rss_kib  # type: ignore[import-not-found]  # noqa: E402
from relay import mqtt  # type: ignore[import-not-found]  # noqa: E402

from relay_server.accounts import token_hash  # noqa: E402
from relay_server.storage import Storage  # noqa: E402
from relay_server.storage_sqlite import SqliteStorage  # noqa: E402
from testbed.endpoints import ROLE_CONTROLLER, ROLE_DEVICE, Endpoint  # noqa: E402
from testbed.ports import free_port  # noqa: E402
from testbed.relay import RelayProcess  # noqa: E402
from testbed.wsclient import SESSION, WsRelayClient, connect, ws_frame  # noqa: E402

PAYLOAD = 200
WINDOW = 4  # frames in flight per pair in the throughput run


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- relay process and its database -----------------------------------------------


class Pairs:
    def __init__(self, count: int) -> None:
        self.devices = [Endpoint(ROLE_DEVICE) for _ in range(count)]
        self.controllers = [Endpoint(ROLE_CONTROLLER) for _ in range(count)]
        self.tokens = [secrets.token_urlsafe(32) for _ in range(count)]


async def seed_database(path: Path, pairs: Pairs, idle: list[Endpoint]) -> None:
    """Accounts, tokens, controller bindings and claimed devices, through the relay's
    storage interface: 1,000 scrypt registrations through the API would take minutes
    and measure scrypt. Nobody logs in, so the accounts get a stand-in password hash."""
    await seed_storage(SqliteStorage(path), pairs, idle)


async def seed_storage(storage: Storage, pairs: Pairs, idle: list[Endpoint]) -> None:
    """`seed_database` on any `Storage` (cluster_bench: PostgreSQL)."""
    await storage.open()
    try:
        now = int(time.time())
        for i, (dev, ctl, token) in enumerate(
            zip(pairs.devices, pairs.controllers, pairs.tokens, strict=True), start=1
        ):
            account = await storage.create_account(f"bench{i}", "scrypt$unused", now)
            await storage.add_token(token_hash(token), account, now, now + 86400)
            await storage.bind_controller(ctl.id, account, now)
            await storage.register_device(dev.id, dev.pub, now)
            await storage.claim_device(dev.id, account, now)
        for endpoint in idle:
            await storage.register_device(endpoint.id, endpoint.pub, now)
    finally:
        await storage.close()


# The relay's frame-rate limits out of the way.
NO_LIMITS = ("--device-frame-rate", "1000000", "--account-frame-rate", "1000000")


def bench_relay(workdir: Path, root: Path = ROOT, loop: str | None = None) -> RelayProcess:
    """The relay of the checkout at `root`, its frame-rate limits out of the way, on the
    event loop `loop` (HOMESEAL_RELAY_EVENT_LOOP, which an older checkout ignores;
    None: the relay's default)."""
    env = {} if loop is None else {"HOMESEAL_RELAY_EVENT_LOOP": loop}
    return RelayProcess(workdir, root=root, args=NO_LIMITS, log_level="WARNING", env=env)


async def gather_limited[T](coros: list[Coroutine[Any, Any, T]], limit: int = 200) -> list[T]:
    """Run the coroutines with at most `limit` at a time (connection storms hurt)."""
    sem = asyncio.Semaphore(limit)

    async def run(coro: Coroutine[Any, Any, T]) -> T:
        async with sem:
            return await coro

    return list(await asyncio.gather(*(run(c) for c in coros)))


# --- forwarding throughput (relay) ---------------------------------------------------


async def connect_pairs(
    relay: RelayProcess, pairs: Pairs, device_relay: RelayProcess | None = None
) -> list[tuple[WsRelayClient, WsRelayClient]]:
    """Controllers to `relay`, devices to `device_relay` (another node) or `relay`."""
    ctls = await gather_limited(
        [
            connect("127.0.0.1", relay.port, ctl, token)
            for ctl, token in zip(pairs.controllers, pairs.tokens, strict=True)
        ]
    )
    port = (device_relay or relay).port
    devs = await gather_limited([connect("127.0.0.1", port, d) for d in pairs.devices])
    return list(zip(ctls, devs, strict=True))


class Counter:
    n = 0
    running = True


async def relay_throughput(
    links: list[tuple[WsRelayClient, WsRelayClient]],
    pairs: Pairs,
    seconds: float,
    pid: int | Sequence[int],
) -> tuple[float, float, float]:
    """(frames/s, relay CPU µs per frame, client CPU µs per frame); `pid` may be several
    processes (cluster nodes and Redis), whose CPU is added up."""
    pids = [pid] if isinstance(pid, int) else list(pid)

    def relay_seconds() -> float:
        return sum(cpu_seconds(p) for p in pids)

    counter = Counter()
    payload = b"\x03" + bytes(PAYLOAD - 1)
    for (ctl, dev), ctl_ep, dev_ep in zip(links, pairs.controllers, pairs.devices, strict=True):
        to_dev = ws_frame(bytes((SESSION,)) + dev_ep.id + payload)
        to_ctl = ws_frame(bytes((SESSION,)) + ctl_ep.id + payload)

        def ctl_frame(data: bytes, ctl: WsRelayClient = ctl, out: bytes = to_dev) -> None:
            counter.n += 1
            if counter.running:
                ctl.send_raw(out)

        def dev_frame(data: bytes, dev: WsRelayClient = dev, out: bytes = to_ctl) -> None:
            counter.n += 1
            dev.send_raw(out)

        ctl.on_frame = ctl_frame
        dev.on_frame = dev_frame
    for (ctl, _), dev_ep in zip(links, pairs.devices, strict=True):
        for _ in range(WINDOW):
            ctl.send(bytes((SESSION,)) + dev_ep.id + payload)
    await asyncio.sleep(1.0)  # warm up
    start_n, start = counter.n, time.perf_counter()
    relay_cpu, client_cpu = relay_seconds(), time.process_time()
    await asyncio.sleep(seconds)
    frames = counter.n - start_n
    rate = frames / (time.perf_counter() - start)
    relay_us = (relay_seconds() - relay_cpu) / frames * 1e6
    client_us = (time.process_time() - client_cpu) / frames * 1e6
    counter.running = False
    await asyncio.sleep(0.5)  # drain the frames in flight
    return rate, relay_us, client_us


async def relay_latency(
    links: list[tuple[WsRelayClient, WsRelayClient]], pairs: Pairs, rate: int, seconds: float
) -> tuple[float, float, int, int]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for (ctl, dev), _ in zip(links, pairs.devices, strict=True):
        ctl.on_frame = lambda data: None

        def dev_frame(data: bytes) -> None:
            samples.append(clock() - struct.unpack_from("!q", data, 12)[0])

        dev.on_frame = dev_frame
    pad = bytes(PAYLOAD - 9)
    heads = [bytes((SESSION,)) + d.id + b"\x03" for d in pairs.devices]
    loop = asyncio.get_running_loop()
    tick = 0.004
    sent = 0
    start = loop.time()
    i = 0
    while (now := loop.time()) - start < seconds:
        due_total = (now - start) * rate
        while sent < due_total:
            ctl = links[i][0]
            ctl.send(heads[i] + struct.pack("!q", clock()) + pad)
            sent += 1
            i = (i + 1) % len(links)
        await asyncio.sleep(tick)
    await asyncio.sleep(0.5)
    samples.sort()
    p50 = samples[len(samples) // 2] / 1e6
    p99 = samples[int(len(samples) * 0.99)] / 1e6
    return p50, p99, sent, len(samples)


# --- idle connections ---------------------------------------------------------------


async def idle_rss(relay: RelayProcess, idle: list[Endpoint], marks: list[int]) -> dict[int, float]:
    assert relay.proc is not None
    pid = relay.proc.pid
    warm = await gather_limited([connect("127.0.0.1", relay.port, e) for e in idle[:10]])
    await asyncio.sleep(1.0)
    base = rss_kib(pid)
    held: list[WsRelayClient] = list(warm)
    results: dict[int, float] = {}
    for mark in marks:
        batch = idle[len(held) : mark]
        held += await gather_limited([connect("127.0.0.1", relay.port, e) for e in batch], 100)
        await asyncio.sleep(2.0)
        results[mark] = (rss_kib(pid) - base) / (mark - 10)
    await asyncio.sleep(3.0)
    alive = sum(1 for p in held if not p.closed.done())
    results[-1] = alive
    async with (
        aiohttp.ClientSession() as http,
        http.get(relay.metrics_url) as resp,
    ):
        text = await resp.text()
    results[-2] = float(
        re.search(r'homeseal_relay_connections\{role="device"\} (\S+)', text).group(1)  # type: ignore[union-attr]
    )
    for p in held:
        assert p.transport is not None
        p.transport.close()
    return results


# --- Mosquitto -------------------------------------------------------------------------


async def mosquitto_throughput(
    workdir: Path, count: int, seconds: float
) -> tuple[float, float, float]:
    """(messages/s, broker CPU µs per message, client CPU µs per message)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"
        "persistence false\nlog_dest none\nmax_queued_messages 100000\n"
        # Like the relay (aiohttp sets TCP_NODELAY): without it Nagle's algorithm and
        # delayed ACKs stall the small ping-pong messages for tens of milliseconds.
        "set_tcp_nodelay true\n"
    )
    proc = subprocess.Popen(  # noqa: ASYNC220
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                await w.wait_closed()
                break
            except OSError:
                await asyncio.sleep(0.05)
        ctls = await gather_limited(
            [mqtt.connect("127.0.0.1", port, f"c{i}", f"c/{i}".encode()) for i in range(count)]
        )
        devs = await gather_limited(
            [mqtt.connect("127.0.0.1", port, f"d{i}", f"d/{i}".encode()) for i in range(count)]
        )
        counter = Counter()
        # Same 211 bytes of frame as through the relay (header + payload).
        body = bytes(11 + PAYLOAD)
        for i, (ctl, dev) in enumerate(zip(ctls, devs, strict=True)):
            to_dev = mqtt.publish_packet(f"d/{i}".encode(), body)
            to_ctl = mqtt.publish_packet(f"c/{i}".encode(), body)

            def on_ctl(p: bytes, ctl: mqtt.MqttClient = ctl, out: bytes = to_dev) -> None:
                counter.n += 1
                if counter.running:
                    ctl.send_raw(out)

            def on_dev(p: bytes, dev: mqtt.MqttClient = dev, out: bytes = to_ctl) -> None:
                counter.n += 1
                dev.send_raw(out)

            ctl.on_message = on_ctl
            dev.on_message = on_dev
            for _ in range(WINDOW):
                ctl.send_raw(to_dev)
        await asyncio.sleep(1.0)
        start_n, start = counter.n, time.perf_counter()
        broker_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
        await asyncio.sleep(seconds)
        messages = counter.n - start_n
        rate = messages / (time.perf_counter() - start)
        broker_us = (cpu_seconds(proc.pid) - broker_cpu) / messages * 1e6
        client_us = (time.process_time() - client_cpu) / messages * 1e6
        counter.running = False
        await asyncio.sleep(0.5)
        for c in (*ctls, *devs):
            assert c.transport is not None
            c.transport.close()
        return rate, broker_us, client_us
    finally:
        proc.terminate()
        proc.wait(10)


# --- main ------------------------------------------------------------------------------


def close_links(links: list[tuple[WsRelayClient, WsRelayClient]]) -> None:
    for pair in links:
        for link in pair:
            assert link.transport is not None
            link.transport.close()


async def forwarding_run(
    workdir: Path, root: Path, pairs: Pairs, seconds: float, loop: str | None = None
) -> tuple[float, float, float]:
    """One relay of checkout `root` on the database in `workdir`: the throughput run."""
    relay = bench_relay(workdir, root, loop)
    await asyncio.to_thread(relay.start)
    try:
        links = await connect_pairs(relay, pairs)
        assert relay.proc is not None
        figures = await relay_throughput(links, pairs, seconds, relay.proc.pid)
        close_links(links)
        return figures
    finally:
        relay.stop()


async def compare(args: argparse.Namespace, work: Path, pairs: Pairs, seconds: float) -> None:
    """Alternate the two relays (ABBA order, so a drift in machine load hits both alike)."""
    trees = {"this": args.relay_root.resolve(), "other": args.compare_with.resolve()}
    names = {k: v.name if trees["this"].name != trees["other"].name else str(v)
             for k, v in trees.items()}  # fmt: skip
    seed = work / "seed.sqlite3"
    await seed_database(seed, pairs, [])
    runs: dict[str, list[tuple[float, float]]] = {"this": [], "other": []}
    for n in range(args.rounds):
        order = ("other", "this") if n % 2 == 0 else ("this", "other")
        for which in order:
            run_dir = work / f"{which}-{n}"
            run_dir.mkdir()
            shutil.copy(seed, run_dir / "relay.sqlite3")
            loop = args.event_loop if which == "this" else None
            fps, relay_us, _ = await forwarding_run(run_dir, trees[which], pairs, seconds, loop)
            runs[which].append((fps, relay_us))
            print(f"round {n + 1} {names[which]:>12}: {fps:>9,.0f} frames/s, "
                  f"relay {relay_us:5.2f} us CPU per forwarded frame")  # fmt: skip
    medians = {}
    for which in ("other", "this"):
        fps = statistics.median(r[0] for r in runs[which])
        relay_us = statistics.median(r[1] for r in runs[which])
        medians[which] = relay_us
        print(f"median {names[which]:>13}: {fps:>9,.0f} frames/s, "
              f"relay {relay_us:5.2f} us CPU per forwarded frame "
              f"(lowest {min(r[1] for r in runs[which]):.2f})")  # fmt: skip
    print(f"ratio {names['this']} / {names['other']}: {medians['this'] / medians['other']:.3f} "
          "(relay CPU per forwarded frame; goal <= 1.05)")  # fmt: skip


async def forwarding_phases(
    work: Path, root: Path, pairs: Pairs, seconds: float, loop: str
) -> float:
    """Throughput and latency of one relay on event loop `loop`; returns its frames/s."""
    relay = bench_relay(work / "fwd", root, loop)
    await asyncio.to_thread(relay.start)
    try:
        links = await connect_pairs(relay, pairs)
        assert relay.proc is not None
        fps, relay_us, client_us = await relay_throughput(links, pairs, seconds, relay.proc.pid)
        print(f"[{loop}] relay forwarded frames/s:   {fps:,.0f}   (goal >= 20,000)")
        per_core = 1e6 / relay_us
        print(f"[{loop}]   CPU per forwarded frame:  relay {relay_us:.1f} us "
              f"(= {per_core:,.0f} frames/s per core), clients {client_us:.1f} us "
              "(goal with uvloop <= 20 us)")  # fmt: skip
        for rate in (5000, 1000):
            p50, p99, sent, got = await relay_latency(links, pairs, rate, seconds)
            print(f"[{loop}] relay latency @{rate:,} frames/s: p50 {p50:.2f} ms, "
                  f"p99 {p99:.2f} ms ({got}/{sent} frames; goal @5,000 p99 <= 5 ms)")  # fmt: skip
        close_links(links)
        return fps
    finally:
        relay.stop()


async def run(args: argparse.Namespace) -> None:
    hard = raise_fd_limit()
    pairs_n = 100 if args.quick else 1000
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    marks = [100, 1000] if args.quick else [1000, 10000]
    if marks[-1] + 100 > hard:
        marks = [m for m in marks if m + 100 <= hard]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# relay benchmark: {pairs_n} pairs, {PAYLOAD}-byte payloads, {os.cpu_count()} CPUs "
          f"(load average {load}), fd limit {hard}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        work = Path(tmp)
        pairs = Pairs(pairs_n)
        if args.compare_with is not None:
            await compare(args, work, pairs, seconds)
            return
        (work / "fwd").mkdir()
        (work / "idle").mkdir()
        await seed_database(work / "fwd" / "relay.sqlite3", pairs, [])
        idle = [Endpoint(ROLE_DEVICE) for _ in range(marks[-1])]
        await seed_database(work / "idle" / "relay.sqlite3", Pairs(0), idle)

        fps_by_loop: dict[str, float] = {}
        for loop in ("uvloop", "asyncio"):
            fps_by_loop[loop] = await forwarding_phases(work, args.relay_root, pairs, seconds, loop)

        relay = bench_relay(work / "idle", args.relay_root)
        await asyncio.to_thread(relay.start)
        try:
            rss = await idle_rss(relay, idle, marks)
            for mark in marks:
                print(f"relay RSS per idle device @{mark:>6,}: {rss[mark]:.1f} KiB   "
                      "(goal <= 30 KiB)")  # fmt: skip
            print(f"idle devices held after the run:     {int(rss[-1]):,} / {marks[-1]:,} "
                  f"(relay's gauge: {int(rss[-2]):,})")  # fmt: skip
        finally:
            relay.stop()

        mq, broker_us, mq_client_us = await mosquitto_throughput(work, pairs_n, seconds)
        print(f"mosquitto forwarded messages/s:      {mq:,.0f}")
        print(f"  CPU per forwarded message:         mosquitto {broker_us:.1f} us, "
              f"clients {mq_client_us:.1f} us")  # fmt: skip
        for loop, fps in fps_by_loop.items():
            print(f"throughput ratio relay ({loop:>7})/mosquitto: {fps / mq:.2f}   (goal >= 1.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 pairs, 2 s phases")
    parser.add_argument(
        "--seconds", type=float, help="length of each measured phase (default 5, --quick 2)"
    )
    parser.add_argument(
        "--relay-root",
        type=Path,
        default=ROOT,
        metavar="DIR",
        help="run the relay_server of this checkout (default: the one holding this script)",
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        metavar="DIR",
        help="only the forwarding run, alternating --relay-root's relay with DIR's",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each relay with --compare-with (default 3)"
    )
    parser.add_argument(
        "--event-loop",
        choices=["auto", "uvloop", "asyncio"],
        default="asyncio",
        help="with --compare-with: the event loop of --relay-root's relay (default asyncio, "
        "the loop of a relay before uvloop: the comparison is then of the code alone)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
