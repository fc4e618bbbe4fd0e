#!/usr/bin/env python3
"""Load and soak run (issue 6), loopback only.

One real relay process, one HA-side controller (the protocol library's own client:
`homeseal_protocol.Controller`, with its RelayConnection, DeviceLinks and
InitiatorSessions), N devices with live Noise KK sessions to it: simulated ones in a
separate process (benchmarks/soak_devices.py, the real protocol in CPython) and a
sample of the real firmware on the MicroPython unix port. Then, for --minutes:
commands from the controller to random devices at a fixed offered rate (each awaited
for its result) and state pushes from random devices at a fixed rate.

The relay serves plain HTTP behind a TLS pipe (testbed.relay.ProxiedRelay): the
devices connect to it directly with ws:// (the devices' wss:// is measured apart, in
benchmarks/tls_bench.py), the controller through the pipe with TLS, as Home Assistant
does.

How devices come to be owned by the account: the firmware devices and --paired
simulated devices pair for real (SPAKE2+ through the relay, then CLAIM); the
rest are registered in the relay's database as claimed by the account (through
its storage interface) before they connect, as if paired earlier. The relay's
PAIR_START limit (20 per account, one more every 15 s, §3.2) would make 1,000 real
pairings take hours.

Prints: frames/s through the relay (its own counter), command round-trip p50/p99,
state-push latency p50/p99, relay RSS at the start (all sessions up) and at the
end and its growth per minute (VmRSS sampled every 10 s), the relay's /metrics
drops and closes. Every error is printed; any error (or unbounded RSS growth)
makes the exit status 1.

    .venv/bin/python benchmarks/soak.py                       # 1,000 devices, 10 minutes
    .venv/bin/python benchmarks/soak.py --devices 100 --minutes 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import resource
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import (  # noqa: E402
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from benchmarks.procstat import cpu_seconds, rss_kib  # noqa: E402
from homeseal_protocol import pairing  # noqa: E402
from homeseal_protocol.client.controller import Controller  # noqa: E402
from homeseal_protocol.client.device_link import DeviceLink, LinkState  # noqa: E402
from homeseal_protocol.errors import DeviceError  # noqa: E402
from homeseal_protocol.ids import endpoint_id, format_id  # noqa: E402
from homeseal_protocol.keys import public_bytes  # noqa: E402
from relay_server.storage_sqlite import SqliteStorage  # noqa: E402
from testbed.accounts import new_account  # noqa: E402
from testbed.firmware import DeviceProcess, Entity  # noqa: E402
from testbed.relay import ProxiedRelay  # noqa: E402
from testbed.tls import make_tls  # noqa: E402

SAMPLE_EVERY = 10.0  # seconds between relay RSS samples
COMMANDS = (
    ("relay", "turn_on", None),
    ("relay", "turn_off", None),
    ("lamp", "turn_on", None),
    ("lamp", "turn_off", None),
)
MAX_PRINTED_ERRORS = 100
# The real firmware devices: the same entity keys as the simulated ones, so commands
# need not tell them apart.
FIRMWARE_ENTITIES: list[Entity] = [
    {"key": "relay", "kind": "switch", "name": "Relay", "pin": 5},
    {"key": "lamp", "kind": "light", "name": "Lamp", "pin": 6},
    {"key": "temp", "kind": "sensor", "name": "Chip", "source": "internal_temp", "interval": 5},
]


class Errors:
    """Every error is printed (up to a cap) and counted; any makes the run fail."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, text: str) -> None:
        self.count += 1
        if self.count <= MAX_PRINTED_ERRORS:
            print(f"ERROR: {text}", flush=True)
        elif self.count == MAX_PRINTED_ERRORS + 1:
            print("ERROR: (further errors counted, not printed)", flush=True)


class ErrorLogHandler(logging.Handler):
    """The client library's warnings (session failures, lost connections) are errors."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(logging.WARNING)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.add(f"client log {record.levelname}: {record.getMessage()}")


# ---------------------------------------------------------------- helpers


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    if hard < needed:
        raise SystemExit(f"soak: needs {needed} file descriptors, the hard limit is {hard}")
    return hard


def setup_code() -> str:
    """8 random digits, not one of the trivial codes §1.2 rejects."""
    while True:
        code = f"{secrets.randbelow(10**8):08d}"
        if len(set(code)) > 1 and code not in ("12345678", "87654321"):
            return code


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def slope_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) in KiB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [float(v) for _, v in samples]
    return statistics.linear_regression(xs, ys).slope * 60


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def labelled(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """{'label value': v} of one labelled metric family."""
    out = {}
    for name, value in metrics.items():
        if m := re.fullmatch(rf'{prefix}\{{\w+="([^"]*)"\}}', name):
            out[m.group(1)] = value
    return out


# ---------------------------------------------------------------- processes


def soak_relay(workdir: Path, account_rate: float) -> ProxiedRelay:
    return ProxiedRelay(
        workdir,
        make_tls(workdir / "tls"),
        args=[
            # One test account registers and logs in; nothing else to limit here.
            "--register-per-address", "1000", "--login-per-address", "1000",
            # One account drives all the devices: the 500 frames/s default is sized for
            # a household and would throttle the 1,000 handshakes at start.
            "--account-frame-rate", str(account_rate),
        ],
    )  # fmt: skip


def relay_log_problems(relay: ProxiedRelay) -> list[str]:
    return [
        ln for ln in relay.relay.output().splitlines() if re.search(r"ERROR|CRITICAL|Traceback", ln)
    ]


def firmware_device(workdir: Path, relay_url: str) -> DeviceProcess:
    """The real firmware, a full state push every 10 s (device → controller traffic)."""
    return DeviceProcess(
        workdir,
        relay_url,
        entities=FIRMWARE_ENTITIES,
        name=f"Soak firmware {workdir.name}",
        model="homeseal-unix",
        pairing_button={"pin": 0, "long_press_ms": 5000},
        state_interval=10,
        control_port=None,
        heapsize="256k",
    )


class DeviceSimulator:
    """benchmarks/soak_devices.py in its own process (its own core, its own GIL)."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.config_path = workdir / "soak_devices.json"
        self.config_path.write_text(json.dumps(config))
        self.log = workdir / "soak_devices.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def launch(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.soak_devices", str(self.config_path),
                cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )  # fmt: skip

    async def wait_ready(self, within: float) -> int:
        """How many simulated devices authenticated to the relay."""
        line = await self._line(within)
        return int(line["ready"])

    async def _line(self, within: float) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not raw:
            raise RuntimeError(f"device simulator exited: {self.log.read_text()[-2000:]}")
        return json.loads(raw)  # type: ignore[no-any-return]

    async def command(self, text: str) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> dict[str, Any]:
        await self.command("stop")
        return await self._line(60)

    async def quit(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(OSError):
            await self.command("quit")
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


# ---------------------------------------------------------------- the run


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.errors = Errors()
        self.relay = soak_relay(workdir, account_rate=max(500.0, 5.0 * args.devices))
        self.controller_key = X25519PrivateKey.generate()
        self.controller_pub = public_bytes(self.controller_key)
        self.soaking = False
        self.rtts: list[float] = []
        self.push_latency: list[float] = []
        self.command_kinds: dict[str, int] = {"simulated": 0, "firmware": 0}
        self.firmware_ids: set[bytes] = set()
        self.last_stamp: dict[bytes, float] = {}
        self.rss: list[tuple[float, int]] = []
        self.pending: set[asyncio.Task[None]] = set()
        self.relay_cpu = 0.0

    # -- set-up

    async def account_with_devices(
        self, http: aiohttp.ClientSession, devices: list[tuple[bytes, bytes]]
    ) -> str:
        """A new account (through the API); `devices` (private, public key) registered
        and claimed by it through the relay's storage interface, as a CLAIM would leave
        them. Returns the account's token."""
        username, token = await new_account(self.relay.relay.base, "soak" + secrets.token_hex(4),
                                            http=http)  # fmt: skip
        storage = SqliteStorage(self.relay.relay.db)
        await storage.open()
        try:
            account = await storage.get_account_by_username(username)
            assert account is not None
            now = int(time.time())
            for _, pub in devices:
                await storage.register_device(endpoint_id(pub), pub, now)
                await storage.claim_device(endpoint_id(pub), account.account_id, now)
        finally:
            await storage.close()
        return token

    async def metrics(self, http: aiohttp.ClientSession) -> dict[str, float]:
        async with http.get(self.relay.relay.metrics_url) as resp:
            return parse_metrics(await resp.text())

    def watch(self, link: DeviceLink) -> None:
        """Sessions must stay up while soaking; `stamp` gives the state-push latency."""
        state = {"ready": False}

        def changed() -> None:
            if self.soaking and state["ready"] and not link.available:
                self.errors.add(f"session with {link.id_text} dropped ({link.state})")
            state["ready"] = link.available
            stamp = link.values.get("stamp")
            if isinstance(stamp, float | int) and stamp != self.last_stamp.get(link.device_id):
                self.last_stamp[link.device_id] = float(stamp)
                if self.soaking:
                    self.push_latency.append(time.monotonic() * 1000 - float(stamp))

        link.add_listener(changed)

    async def wait_ready(self, hub: Controller, within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            ready = sum(link.available for link in hub.links.values())
            if ready == len(hub.links):
                return
            if time.monotonic() > deadline:
                stuck = [f"{link.id_text}={link.state}" for link in hub.links.values()
                         if not link.available][:10]  # fmt: skip
                raise RuntimeError(f"only {ready}/{len(hub.links)} sessions up: {stuck}")
            await asyncio.sleep(0.2)

    # -- load

    async def one_command(self, link: DeviceLink) -> None:
        key, action, _ = random.choice(COMMANDS)
        brightness = random.randint(1, 255) if (key, action) == ("lamp", "turn_on") else None
        start = time.perf_counter()
        try:
            await link.command(key, action, brightness=brightness)
        except DeviceError as err:
            self.errors.add(f"command {key}.{action} to {link.id_text}: {type(err).__name__} {err}")
            return
        self.rtts.append((time.perf_counter() - start) * 1000)

    async def command_loop(self, hub: Controller, seconds: float) -> int:
        """Commands at a fixed offered rate (open loop) to uniformly random devices."""
        links = list(hub.links.values())
        rate = self.args.command_rate
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while (now := loop.time()) - start < seconds:
            due = int((now - start) * rate)
            while sent < due:
                sent += 1
                link = random.choice(links)
                kind = "firmware" if link.device_id in self.firmware_ids else "simulated"
                self.command_kinds[kind] += 1
                if not link.available:
                    self.errors.add(f"command to {link.id_text}: no session ({link.state})")
                    continue
                task = asyncio.create_task(self.one_command(link))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
            await asyncio.sleep(0.01)
        return sent

    async def sample_rss(self, t0: float) -> None:
        while True:
            self.rss.append((time.monotonic() - t0, rss_kib(self.relay.relay.pid)))
            await asyncio.sleep(SAMPLE_EVERY)

    # -- main

    async def run(self) -> int:
        args = self.args
        n_fw = min(args.firmware, args.devices)
        n_sim = args.devices - n_fw
        n_paired = min(args.paired, n_sim)
        raise_fd_limit(args.devices * 3 + 200)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"# soak: {args.devices} devices ({n_fw} firmware, {n_sim} simulated, "
            f"{n_paired + n_fw} paired over SPAKE2+), {args.minutes:g} min, "
            f"{args.command_rate:g} commands/s, {args.state_rate:g} state pushes/s; "
            f"{os.cpu_count()} CPUs, load average {load}",
            flush=True,
        )
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(asctime)s %(name)s: %(message)s",
        )
        error_log = ErrorLogHandler(self.errors)
        logging.getLogger("homeseal_protocol").addHandler(error_log)

        t_setup = time.monotonic()
        await asyncio.to_thread(self.relay.start)
        firmware: list[DeviceProcess] = []
        sim: DeviceSimulator | None = None
        hub: Controller | None = None
        hub_task: asyncio.Task[None] | None = None
        async with aiohttp.ClientSession() as http:
            try:
                # Simulated devices: fresh keys each run.
                keys = [X25519PrivateKey.generate() for _ in range(n_sim)]
                sims = [
                    (k.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
                     public_bytes(k)) for k in keys
                ]  # fmt: skip
                to_pair = sims[:n_paired]
                preclaimed = sims[n_paired:]
                token = await self.account_with_devices(http, preclaimed)
                codes: dict[bytes, str] = {}
                specs: list[dict[str, Any]] = []
                for priv, pub in to_pair:
                    code, salt = setup_code(), secrets.token_bytes(16)
                    w0, big_l = pairing.device_verifier(code, salt, 1000, endpoint_id(pub))
                    codes[endpoint_id(pub)] = code
                    verifier = {"w0": w0.hex(), "L": big_l.hex(), "salt": salt.hex(),
                                "iterations": 1000}  # fmt: skip
                    specs.append({"priv": priv.hex(), "verifier": verifier})
                specs += [
                    {"priv": priv.hex(), "controller_pub": self.controller_pub.hex()}
                    for priv, _ in preclaimed
                ]
                sim = DeviceSimulator(
                    self.workdir,
                    {"host": "127.0.0.1", "port": self.relay.relay.port,
                     "state_rate": args.state_rate, "devices": specs},
                )  # fmt: skip
                await sim.launch()
                # Real firmware: provisioned by the real tool, paired over the relay.
                firmware = [
                    firmware_device(self.workdir / f"fw{i}", self.relay.device_url)
                    for i in range(n_fw)
                ]
                provisioned = await asyncio.gather(
                    *(asyncio.to_thread(dev.provision, setup_code()) for dev in firmware)
                )
                for dev, label in zip(firmware, provisioned, strict=True):
                    dev.start()
                    self.firmware_ids.add(dev.device_id)
                    codes[dev.device_id] = label.code
                ready = await sim.wait_ready(within=60 + args.devices / 10)
                if ready != n_sim:
                    self.errors.add(f"only {ready}/{n_sim} simulated devices authenticated")
                for dev in firmware:
                    await dev.wait_log_async(r"relay connected", within=30)
                t_connected = time.monotonic()

                # The one HA-side client.
                trust = ssl.create_default_context(cafile=self.relay.tls.ca)
                hub = Controller(http, self.relay.url, token, self.controller_key, trust)
                for _, pub in preclaimed:
                    self.watch(hub.add_device(endpoint_id(pub), pub))
                hub_task = asyncio.create_task(hub.run())
                if not await hub.connection.wait_connected(30):
                    raise RuntimeError(f"controller did not connect: {hub.connection.last_error}")
                t_pair = time.monotonic()
                for device_id, code in codes.items():
                    device_pub = await hub.pair(device_id, code)
                    self.watch(hub.add_device(device_id, device_pub))
                t_paired = time.monotonic()
                await self.wait_ready(hub, within=60 + args.devices / 10)
                t_ready = time.monotonic()
                print(
                    f"set-up: devices connected in {t_connected - t_setup:.1f} s, "
                    f"{len(codes)} pairings in {t_paired - t_pair:.1f} s, "
                    f"all {len(hub.links)} sessions up {t_ready - t_setup:.1f} s after start",
                    flush=True,
                )
                handshakes_before = sum(link.handshakes for link in hub.links.values())
                # Frames from unknown peers or out of place are dropped, not acted on. In
                # set-up a PRESENCE for a device being paired may beat `add_device`
                # (harmless: adding a device starts its handshake at once): noted only.
                dropped_before = hub.frames_dropped
                if dropped_before:
                    print(f"note: the controller dropped {dropped_before} frames during set-up "
                          "(--verbose logs which)", flush=True)  # fmt: skip

                # The soak.
                seconds = args.minutes * 60
                rss_start = rss_kib(self.relay.relay.pid)
                m_start = await self.metrics(http)
                self.relay_cpu = cpu_seconds(self.relay.relay.pid)
                t0 = time.monotonic()
                sampler = asyncio.create_task(self.sample_rss(t0))
                self.soaking = True
                await sim.command("go")
                sent = await self.command_loop(hub, seconds)
                elapsed = time.monotonic() - t0
                sim_report = await sim.stop()
                if self.pending:
                    await asyncio.wait(self.pending, timeout=15)
                self.soaking = False
                m_end = await self.metrics(http)
                self.relay_cpu = cpu_seconds(self.relay.relay.pid) - self.relay_cpu
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
                rss_end = rss_kib(self.relay.relay.pid)
                self.rss.append((time.monotonic() - t0, rss_end))
                handshakes = sum(link.handshakes for link in hub.links.values())
                if dropped := hub.frames_dropped - dropped_before:
                    self.errors.add(f"the controller dropped {dropped} frames during the soak")

                self.check(hub, sim_report, firmware, handshakes - handshakes_before, n_sim)
                return self.report(
                    elapsed, sent, sim_report, m_start, m_end, rss_start, rss_end, n_fw
                )
            finally:
                self.soaking = False
                # Tearing down is not an error: the connection-lost warnings now are ours.
                logging.getLogger("homeseal_protocol").removeHandler(error_log)
                if hub is not None:
                    await hub.close()
                if hub_task is not None:
                    hub_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await hub_task
                if sim is not None:
                    await sim.quit()
                for dev in firmware:
                    dev.stop()
                self.relay.stop()

    def check(
        self,
        hub: Controller,
        sim_report: dict[str, Any],
        firmware: list[DeviceProcess],
        rehandshakes: int,
        n_sim: int,
    ) -> None:
        for text in sim_report["error_messages"]:
            self.errors.add(f"simulated device: {text}")
        if sim_report["errors"] > len(sim_report["error_messages"]):
            for _ in range(sim_report["errors"] - len(sim_report["error_messages"])):
                self.errors.add("simulated device: (error not kept)")
        if sim_report["sessions_open"] != n_sim:
            self.errors.add(f"{n_sim - sim_report['sessions_open']} simulated sessions not open")
        if rehandshakes:
            self.errors.add(f"{rehandshakes} handshakes during the soak (sessions were replaced)")
        down = [link.id_text for link in hub.links.values() if link.state is not LinkState.READY]
        if down:
            self.errors.add(f"{len(down)} sessions not up at the end: {down[:10]}")
        for dev in firmware:
            if not dev.alive:
                self.errors.add(f"firmware {format_id(dev.device_id)} exited")
            # Its log must show no failure and no lost relay connection.
            bad = re.compile(r"Traceback|error|fail|relay closed|reset", re.IGNORECASE)
            lines = [ln for ln in dev.output().splitlines() if bad.search(ln)]
            if lines:
                self.errors.add(f"firmware {format_id(dev.device_id)} printed: {lines[:5]}")
        for line in relay_log_problems(self.relay):
            self.errors.add(f"relay log: {line}")

    def report(  # noqa: PLR0917
        self,
        elapsed: float,
        sent: int,
        sim_report: dict[str, Any],
        m_start: dict[str, float],
        m_end: dict[str, float],
        rss_start: int,
        rss_end: int,
        n_fw: int,
    ) -> int:
        routed = (
            m_end["homeseal_relay_frames_routed_total"]
            - m_start["homeseal_relay_frames_routed_total"]
        )
        drops_end = labelled(m_end, "homeseal_relay_drops_total")
        drops_start = labelled(m_start, "homeseal_relay_drops_total")
        drops = {r: v - drops_start.get(r, 0) for r, v in drops_end.items()
                 if v - drops_start.get(r, 0)}  # fmt: skip
        closes_end = labelled(m_end, "homeseal_relay_closes_total")
        closes_start = labelled(m_start, "homeseal_relay_closes_total")
        closes = {c: v - closes_start.get(c, 0) for c, v in closes_end.items()
                  if v - closes_start.get(c, 0)}  # fmt: skip
        if drops:
            self.errors.add(f"relay dropped frames during the soak: {drops}")
        if closes:
            self.errors.add(f"relay closed connections during the soak: {closes}")
        if self.pending:
            self.errors.add(f"{len(self.pending)} commands still unanswered at the end")
        minutes = elapsed / 60
        growth_all = slope_per_minute(self.rss)
        half = [s for s in self.rss if s[0] >= elapsed / 2]
        growth_late = slope_per_minute(half)
        # Growth is judged on the second half only, and only when that starts ≥ 2 min in:
        # until every device has seen traffic its buffers are still being touched (with
        # 1,000 devices that warm-up shows as a few hundred KiB/min for a minute or two).
        # A leak of 64 KiB/min would be ~90 MiB a day.
        judged = elapsed >= 240 and len(half) >= 12
        limit = max(64.0, rss_start * 0.001)  # KiB per minute
        unbounded = judged and growth_late > limit
        if unbounded:
            self.errors.add(
                f"relay RSS keeps growing: {growth_late:.0f} KiB/min over the second half "
                f"(limit {limit:.0f})"
            )
        lines = [
            "",
            f"== soak result: {elapsed:.0f} s, "
            f"{len(self.last_stamp)} simulated devices reporting state ==",
            f"frames through the relay : {routed / elapsed:,.0f} frames/s ({routed:,.0f} frames); "
            f"relay CPU {self.relay_cpu / elapsed:.1%} of a core, "
            f"{self.relay_cpu / max(routed, 1) * 1e6:.0f} µs per frame",
            f"commands                 : {sent:,} offered at {self.args.command_rate:g}/s "
            f"({self.command_kinds['firmware']} to the {n_fw} firmware devices), "
            f"{len(self.rtts):,} ok",
            f"command round trip       : p50 {percentile(self.rtts, 0.5):.1f} ms, "
            f"p99 {percentile(self.rtts, 0.99):.1f} ms, max {max(self.rtts, default=0):.1f} ms",
            f"state pushes             : {sim_report['states']:,} sent at "
            f"{self.args.state_rate:g}/s; latency p50 {percentile(self.push_latency, 0.5):.1f} "
            f"ms, p99 {percentile(self.push_latency, 0.99):.1f} ms",
            f"relay RSS                : start {rss_start / 1024:.1f} MiB (all sessions up), "
            f"end {rss_end / 1024:.1f} MiB; growth {growth_all:+.0f} KiB/min overall, "
            + (f"{growth_late:+.0f} KiB/min over the second half "
               f"({'UNBOUNDED GROWTH' if unbounded else 'bounded'}, limit {limit:.0f})"
               if judged else f"{growth_late:+.0f} KiB/min over the second half "
               "(not judged: needs a run of ≥ 4 min)"),
            "relay RSS samples (MiB)  : "
            + " ".join(f"{v / 1024:.1f}" for _, v in self.rss),
            f"relay /metrics drops     : {drops or 'none'}; closes: {closes or 'none'}",
            f"device simulator         : {sim_report['commands']:,} commands executed, "
            f"{sim_report['frames_in']:,} frames in, {sim_report['frames_out']:,} out, "
            f"{sim_report['cpu_seconds']:.1f} s CPU",
            f"errors                   : {self.errors.count}",
        ]  # fmt: skip
        print("\n".join(lines), flush=True)
        if self.args.json:
            Path(self.args.json).write_text(
                json.dumps(
                    {
                        "seconds": elapsed, "frames_per_s": routed / elapsed,
                        "relay_cpu_seconds": self.relay_cpu,
                        "commands_sent": sent, "commands_ok": len(self.rtts),
                        "rtt_p50_ms": percentile(self.rtts, 0.5),
                        "rtt_p99_ms": percentile(self.rtts, 0.99),
                        "push_p50_ms": percentile(self.push_latency, 0.5),
                        "push_p99_ms": percentile(self.push_latency, 0.99),
                        "states": sim_report["states"], "rss_start_kib": rss_start,
                        "rss_end_kib": rss_end, "rss_growth_kib_per_min": growth_all,
                        "rss_unbounded": unbounded, "drops": drops, "closes": closes,
                        "rss_samples_kib": [v for _, v in self.rss],
                        "firmware_commands": self.command_kinds["firmware"],
                        "errors": self.errors.count, "minutes": minutes,
                    },
                    indent=2,
                )
            )  # fmt: skip
        return 1 if self.errors.count else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000, help="devices in all (1000)")
    parser.add_argument("--firmware", type=int, default=3,
                        help="of which real firmware on the MicroPython unix port (3)")  # fmt: skip
    parser.add_argument("--paired", type=int, default=5,
                        help="simulated devices paired over SPAKE2+ (5)")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration (10)")
    parser.add_argument("--command-rate", type=float, default=100.0, help="commands/s (100)")
    parser.add_argument("--state-rate", type=float, default=200.0, help="state pushes/s (200)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--verbose", action="store_true", help="the client's debug log")
    args = parser.parse_args()
    if args.firmware + args.paired > 20:
        parser.error("--firmware + --paired must stay within the relay's 20 PAIR_STARTs/account")
    workdir = Path(tempfile.mkdtemp(prefix="homeseal-soak-"))
    try:
        return asyncio.run(Soak(args, workdir).run())
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    sys.exit(main())
