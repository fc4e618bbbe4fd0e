"""Firmware benchmark: the whole device, precompiled to .mpy, on the unix port.

    .venv/bin/python benchmarks/firmware_bench.py [--commands 1000] [--heap 160k] [--every-kind]

What it does, against the real relay process:

1. builds the firmware bundle for the unix port's simulated pins
   (scripts/build-firmware: firmware/manifest.py's modules compiled with
   mpy-cross -march=x64, main.py as source) into a temporary directory;
2. pairs a freshly provisioned device (and finds the smallest heap that
   pairing works with);
3. with the paired state, runs the device under `-X heapsize=<heap>`: it
   connects, the controller opens one session, and serves N commands one
   after the other (switch, light with brightness, button; a retried id now
   and then); reports time from the websocket connect to the open session,
   command-to-result latency (p50, p99) and gc.mem_alloc at rest and at peak
   (main.py --mem-stats: each frame starts from a collected heap, the peak is
   sampled at the deepest point of handling);
4. bisects the smallest heap (4 KiB steps) that serves the commands.

Figures go to stdout (and as JSON with --json FILE).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeseal_protocol.envelope import FrameType  # noqa: E402  (after the path tweak)
from testbed.accounts import new_account  # noqa: E402
from testbed.endpoints import Controller  # noqa: E402
from testbed.firmware import MORE_KINDS, TEST_ENTITIES, DeviceProcess, Entity  # noqa: E402
from testbed.paths import micropython_env  # noqa: E402
from testbed.process import TestbedError  # noqa: E402
from testbed.relay import RelayProcess  # noqa: E402
from tools import firmware_bundle  # noqa: E402

CODE = "27182818"
RELAY_ARGS = ("--device-frame-rate", "100000", "--account-frame-rate", "100000")


def kib(text: str) -> int:
    return int(text[:-1]) * 1024 if text.endswith("k") else int(text)


def build_mpy(out: Path) -> Path:
    """The firmware bundle for the unix port's simulated pins (scripts/build-firmware:
    what a board gets, compiled for x64); returns its directory."""
    return firmware_bundle.build(out / "bundle", "x64", "sim").parent


# The device's entities (--every-kind adds one of each kind beyond the first five).
ENTITIES: list[Entity] = list(TEST_ENTITIES)


def device(workdir: Path, relay: RelayProcess, build: Path, heap: int, *args: str) -> DeviceProcess:
    return DeviceProcess(
        workdir,
        relay.device_url,
        entities=ENTITIES,
        heapsize=str(heap),
        main=build / "main.py",  # from source, as a board runs it
        env=micropython_env(firmware=build / "lib"),
        args=args,
    )


async def pair_once(
    workdir: Path, relay: RelayProcess, build: Path, ctl: Controller, heap: int
) -> tuple[DeviceProcess, bytes] | None:
    dev = device(workdir, relay, build, heap)
    dev.provision(CODE)
    dev.start()
    try:
        await dev.wait_log_async("relay connected", within=15)
        pub = await ctl.pair(dev.device_id, CODE)
        await dev.wait_log_async("claimed by controller", within=10)
    except (AssertionError, Exception):
        dev.stop()
        return None
    dev.stop()
    return dev, pub


async def serve(
    dev: DeviceProcess, ctl: Controller, pub: bytes, commands: int
) -> dict[str, Any] | None:
    """Start the paired device, open a session, run the commands; None on failure."""
    ctl.drain()
    dev.start()
    try:
        # Open the session the moment the relay reports the device online, as
        # the integration does.
        while True:
            presence = await ctl.recv((FrameType.PRESENCE,), within=15)
            if presence.peer == dev.device_id and presence.payload == b"\x01":
                break
        session = await ctl.open_session(dev.device_id, pub)
        m = await dev.wait_log_async(r"session open (\d+) ms after connect", within=5)
        connect_to_session_ms = int(m.group(1))
        auth_ms = int(re.findall(r"relay connected claimed=1 \((\d+) ms\)", dev.output())[-1])
        await asyncio.sleep(0.5)
        rest = await dev.control({"op": "mem"})
        latencies = []
        for i in range(commands):
            kind = i % 4
            t0 = time.perf_counter()
            if kind == 0:
                r = await session.command("relay1", "turn_on" if i % 8 else "turn_off")
            elif kind == 1:
                r = await session.command("lamp", "turn_on", brightness=1 + i % 255)
            elif kind == 2:
                r = await session.command("bell", "press")
            else:  # a retry of the previous id: answered from the result cache
                r = await session.command("bell", "press", cid=session.next_id - 1)
            latencies.append((time.perf_counter() - t0) * 1000)
            if not r["ok"]:
                raise AssertionError(r)
        end = await dev.control({"op": "mem"})
        if "MemoryError" in dev.output() or "handler error" in dev.output():
            return None
        latencies.sort()
        return {
            "commands": commands,
            "auth_ms": auth_ms,
            "connect_to_session_ms": connect_to_session_ms,
            "latency_p50_ms": round(statistics.median(latencies), 2),
            "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
            "latency_max_ms": round(latencies[-1], 2),
            "mem_alloc_rest": rest["alloc"],
            "mem_alloc_rest_after": end["alloc"],
            "mem_peak": end["peak"],
        }
    except (AssertionError, OSError, KeyError, ValueError, TimeoutError, TestbedError):
        return None
    finally:
        dev.stop()


async def bisect(low: int, high: int, works: Any) -> int:
    """Smallest heap in [low, high] (4 KiB steps) for which `await works(heap)` is true."""
    step = 4096
    while high - low > step:
        mid = (low + high) // 2 // step * step
        if await works(mid):
            high = mid
        else:
            low = mid
    return high


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="homeseal-bench-"))
    results: dict[str, Any] = {"heap_target": args.heap, "entities": len(ENTITIES)}
    relay = RelayProcess(work / "relay", args=RELAY_ARGS)
    relay.start()
    try:
        build = build_mpy(work / "mpy")
        account = await new_account(relay.base)
        ctl = await Controller(relay.base, account.token).connect()
        try:
            # Pairing (P-256 SPAKE2+) once at a comfortable heap, then its smallest heap.
            paired = await pair_once(work / "pair", relay, build, ctl, 1024 * 1024)
            if paired is None:
                raise SystemExit("pairing failed even with a 1 MiB heap")
            dev, pub = paired
            trial = 0

            async def pairs_with(heap: int) -> bool:
                nonlocal trial
                trial += 1
                ok = await pair_once(work / f"pairheap{trial}", relay, build, ctl, heap)
                return ok is not None

            if not args.no_bisect:
                results["pairing_min_heap"] = await bisect(32 * 1024, 1024 * 1024, pairs_with)

            # Serving at the target heap, with the memory probe.
            target = kib(args.heap)
            served = await serve(
                device(dev.workdir, relay, build, target, "--mem-stats"), ctl, pub, args.commands
            )
            if served is None:
                raise SystemExit(
                    f"the device did not serve {args.commands} commands at {args.heap}"
                )
            results["with_mem_stats"] = served
            # The same without the probe (its gc.collect per frame costs time).
            results["serve"] = await serve(
                device(dev.workdir, relay, build, target), ctl, pub, args.commands
            )

            async def serves_at(heap: int) -> bool:
                d = device(dev.workdir, relay, build, heap)
                return await serve(d, ctl, pub, args.bisect_commands) is not None

            if not args.no_bisect:
                smallest = await bisect(8 * 1024, target, serves_at)
                confirm = await serve(
                    device(dev.workdir, relay, build, smallest), ctl, pub, args.commands
                )
                while confirm is None and smallest < target:
                    smallest += 4096
                    confirm = await serve(
                        device(dev.workdir, relay, build, smallest), ctl, pub, args.commands
                    )
                results["serve_min_heap"] = smallest
                results["serve_at_min_heap"] = confirm
        finally:
            await ctl.close()
    finally:
        relay.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            results["workdir"] = str(work)
    return results


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--commands", type=int, default=1000)
    p.add_argument("--bisect-commands", type=int, default=200)
    p.add_argument("--heap", default="160k")
    p.add_argument("--no-bisect", action="store_true")
    p.add_argument(
        "--every-kind",
        action="store_true",
        help="declare one entity of every kind (testbed.firmware.MORE_KINDS too)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.every_kind:
        ENTITIES.extend(MORE_KINDS)
    results = asyncio.run(run(args))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
