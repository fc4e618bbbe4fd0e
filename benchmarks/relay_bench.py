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

Run from the repository root: `.venv/bin/python benchmarks/relay_bench.py`
(`--quick` for a smoke run with fewer pairs and shorter phases).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import resource
import secrets
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import aiohttp  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from procstat import cpu_seconds, free_port, rss_kib  # type: ignore[import-not-found]  # noqa: E402
from relay import mqtt  # type: ignore[import-not-found]  # noqa: E402
from relay.wsclient import (  # type: ignore[import-not-found]  # noqa: E402
    SESSION,
    Endpoint,
    WsRelayClient,
    connect,
    ws_frame,
)

from relay_server.storage_sqlite import MIGRATIONS  # noqa: E402

PAYLOAD = 200
WINDOW = 4  # frames in flight per pair in the throughput run


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- relay process and its database -----------------------------------------------


class Pairs:
    def __init__(self, count: int) -> None:
        self.devices = [Endpoint(X25519PrivateKey.generate(), 0x01) for _ in range(count)]
        self.controllers = [Endpoint(X25519PrivateKey.generate(), 0x02) for _ in range(count)]
        self.tokens = [secrets.token_urlsafe(32) for _ in range(count)]


def seed_database(path: Path, pairs: Pairs, idle: list[Endpoint]) -> None:
    """Accounts, tokens, controller bindings and claimed devices, written directly:
    1,000 scrypt registrations through the API would take minutes and measure scrypt."""
    db = sqlite3.connect(path)
    for script in MIGRATIONS:
        db.executescript(script)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
    now = int(time.time())
    with db:
        for i, (dev, ctl, token) in enumerate(
            zip(pairs.devices, pairs.controllers, pairs.tokens, strict=True), start=1
        ):
            db.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?)", (i, f"bench{i}", "scrypt$x", now)
            )
            db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, 0)",
                (hashlib.sha256(token.encode()).hexdigest(), i, now, now + 86400),
            )
            db.execute("INSERT INTO controllers VALUES (?, ?, ?)", (ctl.id, i, now))
            db.execute("INSERT INTO devices VALUES (?, ?, ?, ?, ?)", (dev.id, dev.pub, i, now, now))
        db.executemany(
            "INSERT INTO devices VALUES (?, ?, NULL, NULL, ?)",
            [(e.id, e.pub, now) for e in idle],
        )
    db.close()


class RelayProcess:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        cmd = [
            sys.executable, "-m", "relay_server",
            "--host", "127.0.0.1", "--port", str(self.port), "--plain-http",
            "--db", str(self.workdir / "relay.sqlite3"),
            "--key-file", str(self.workdir / "relay.key"),
            "--log-level", "WARNING",
            "--device-frame-rate", "1000000", "--account-frame-rate", "1000000",
        ]  # fmt: skip
        log = (self.workdir / "relay.log").open("ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)  # noqa: ASYNC220
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "relay.log").read_text()[-2000:])
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("relay did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def gather_limited[T](coros: list[Coroutine[Any, Any, T]], limit: int = 200) -> list[T]:
    """Run the coroutines with at most `limit` at a time (connection storms hurt)."""
    sem = asyncio.Semaphore(limit)

    async def run(coro: Coroutine[Any, Any, T]) -> T:
        async with sem:
            return await coro

    return list(await asyncio.gather(*(run(c) for c in coros)))


# --- forwarding throughput (relay) ---------------------------------------------------


async def connect_pairs(
    relay: RelayProcess, pairs: Pairs
) -> list[tuple[WsRelayClient, WsRelayClient]]:
    ctls = await gather_limited(
        [
            connect("127.0.0.1", relay.port, ctl, token)
            for ctl, token in zip(pairs.controllers, pairs.tokens, strict=True)
        ]
    )
    devs = await gather_limited([connect("127.0.0.1", relay.port, d) for d in pairs.devices])
    return list(zip(ctls, devs, strict=True))


class Counter:
    n = 0
    running = True


async def relay_throughput(
    links: list[tuple[WsRelayClient, WsRelayClient]], pairs: Pairs, seconds: float, pid: int
) -> tuple[float, float, float]:
    """(frames/s, relay CPU µs per frame, client CPU µs per frame)."""
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
    relay_cpu, client_cpu = cpu_seconds(pid), time.process_time()
    await asyncio.sleep(seconds)
    frames = counter.n - start_n
    rate = frames / (time.perf_counter() - start)
    relay_us = (cpu_seconds(pid) - relay_cpu) / frames * 1e6
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
        http.get(f"http://127.0.0.1:{relay.port}/metrics") as resp,
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


async def run(args: argparse.Namespace) -> None:
    hard = raise_fd_limit()
    pairs_n = 100 if args.quick else 1000
    seconds = 2.0 if args.quick else 5.0
    marks = [100, 1000] if args.quick else [1000, 10000]
    if marks[-1] + 100 > hard:
        marks = [m for m in marks if m + 100 <= hard]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# relay benchmark: {pairs_n} pairs, {PAYLOAD}-byte payloads, {os.cpu_count()} CPUs "
          f"(load average {load}), fd limit {hard}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        work = Path(tmp)
        (work / "fwd").mkdir()
        (work / "idle").mkdir()
        pairs = Pairs(pairs_n)
        seed_database(work / "fwd" / "relay.sqlite3", pairs, [])
        idle = [Endpoint(X25519PrivateKey.generate(), 0x01) for _ in range(marks[-1])]
        seed_database(work / "idle" / "relay.sqlite3", Pairs(0), idle)

        relay = RelayProcess(work / "fwd")
        await relay.start()
        try:
            links = await connect_pairs(relay, pairs)
            assert relay.proc is not None
            fps, relay_us, client_us = await relay_throughput(links, pairs, seconds, relay.proc.pid)
            print(f"relay forwarded frames/s:            {fps:,.0f}   (goal >= 20,000)")
            per_core = 1e6 / relay_us
            print(f"  CPU per forwarded frame:           relay {relay_us:.1f} us "
                  f"(= {per_core:,.0f} frames/s per core), clients {client_us:.1f} us")  # fmt: skip
            p50, p99, sent, got = await relay_latency(links, pairs, 5000, seconds)
            print(f"relay latency @5,000 frames/s:       p50 {p50:.2f} ms, p99 {p99:.2f} ms "
                  f"({got}/{sent} frames; goal p99 <= 5 ms)")  # fmt: skip
            p50, p99, sent, got = await relay_latency(links, pairs, 1000, seconds)
            print(f"relay latency @1,000 frames/s:       p50 {p50:.2f} ms, p99 {p99:.2f} ms "
                  f"({got}/{sent} frames)")  # fmt: skip
            for ctl, dev in links:
                for p in (ctl, dev):
                    assert p.transport is not None
                    p.transport.close()
        finally:
            relay.stop()

        relay = RelayProcess(work / "idle")
        await relay.start()
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
        print(f"throughput ratio relay/mosquitto:    {fps / mq:.2f}   (goal >= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 pairs, 2 s phases")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
