#!/usr/bin/env python3
"""Login benchmark (issue 11: M1, I1, R2), loopback only.

For the relay of this checkout (or --relay-root's), and with --compare-with DIR for
another checkout's too (e.g. /work/base, the relay before the fixes), prints:

  1. login latency p50/p99 of one user at a time on an idle relay (the hash scheme's
     cost: Argon2id 19 MiB t=2 here, scrypt N=2^14 before);
  2. the same while attackers keep 80 password checks in flight (each answer is
     followed by the next request at once):
     a. one client (127.0.0.2): `POST /api/v1/account/password` with a leaked token
        and wrong passwords (the review's measurement);
     b. one client: logins of unknown usernames (each costs the stand-in hash; 4,000
        names, so that the per-username limit rarely refuses them);
     c. 80 clients (127.0.1.1-80): the same logins;
     first with every limit at its default, then (b, c) with the per-address login
     limit lifted (`--login-per-address 100000`), so that only the hash pool's own
     bounds act. The attacker's answers are counted by status; a victim login the
     relay refuses at once (503 busy) is counted, not timed;
  3. relay RSS before and after 12,000 `POST /api/v1/tokens` with unique
     15,000-character usernames from one client (every limit at its default).

Each victim login comes from its own address (127.0.2.x) and account, as different
users' would. The unauthenticated-connection caps are lifted
(testbed.relay.TEST_ENVIRONMENT) so that all 80 checks reach the password code; the
hash pool keeps its defaults.

    .venv/bin/python benchmarks/login_bench.py --compare-with /work/base
    .venv/bin/python benchmarks/login_bench.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import aiohttp  # noqa: E402
from procstat import rss_kib  # type: ignore[import-not-found]  # noqa: E402

from relay_server.config import Limits  # noqa: E402
from testbed.relay import RelayProcess  # noqa: E402

PASSWORD = "a perfectly fine passphrase"
ATTACKER = "127.0.0.2"
IN_FLIGHT = 80


def session(local: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local, 0), limit=0))


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no sample"
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  (n={len(ordered)})"


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, str], token: str | None = None
) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status


class Bench:
    def __init__(self, relay: RelayProcess, victims: int) -> None:
        self.relay = relay
        self.base = relay.base
        self.victims = [f"victim{i:04d}" for i in range(victims)]
        self.round = 0
        self.token = ""

    async def setup(self) -> None:
        async with session("127.0.0.1") as http:
            for name in [*self.victims, "leaked"]:
                body = {"username": name, "password": PASSWORD}
                assert await post(http, self.base + "/api/v1/accounts", body) == 201
            async with http.post(
                self.base + "/api/v1/tokens", json={"username": "leaked", "password": PASSWORD}
            ) as resp:
                self.token = (await resp.json())["token"]

    async def victim_logins(self, count: int) -> tuple[list[float], Counter[int]]:
        """`count` logins one after the other, each of another victim account: the
        latencies of the successful ones, and every answer's status."""
        samples = []
        statuses: Counter[int] = Counter()
        for i in range(count):
            n = self.round + i
            name = self.victims[n % len(self.victims)]
            async with session(f"127.0.2.{n % 250 + 1}") as http:
                started = time.perf_counter()
                status = await post(
                    http, self.base + "/api/v1/tokens", {"username": name, "password": PASSWORD}
                )
            statuses[status] += 1
            if status == 201:
                samples.append(time.perf_counter() - started)
            else:
                assert status == 503, status  # busy: refused at once, never queued
                await asyncio.sleep(0.05)
        self.round += count
        return samples, statuses

    async def under_attack(
        self, kind: str, count: int
    ) -> tuple[list[float], Counter[int], Counter[int]]:
        answers: Counter[int] = Counter()
        running = True
        sessions = (
            [session(f"127.0.1.{i + 1}") for i in range(IN_FLIGHT)]
            if kind == "many"
            else [session(ATTACKER)]
        )

        async def attacker(http: aiohttp.ClientSession) -> None:
            while running:
                try:
                    if kind == "password":
                        status = await post(
                            http,
                            self.base + "/api/v1/account/password",
                            {"current_password": secrets.token_hex(8), "new_password": "x" * 12},
                            self.token,
                        )
                    else:
                        # From a fixed set of names: each stays within its per-username
                        # limit, and they never fill the limiter's table (10,000 names).
                        name = f"nobody{secrets.randbelow(4000)}"
                        status = await post(
                            http,
                            self.base + "/api/v1/tokens",
                            {"username": name, "password": secrets.token_hex(8)},
                        )
                except aiohttp.ClientError:
                    status = 0
                answers[status] += 1

        tasks = [
            asyncio.create_task(attacker(sessions[i % len(sessions)])) for i in range(IN_FLIGHT)
        ]
        await asyncio.sleep(1.0)  # the load builds up
        try:
            samples, statuses = await self.victim_logins(count)
        finally:
            running = False
            await asyncio.gather(*tasks)
            for http in sessions:
                await http.close()
        return samples, statuses, answers


async def long_usernames(relay: RelayProcess, count: int) -> tuple[int, int, float]:
    """(RSS before, RSS after, seconds) for `count` logins with 15,000-character names."""
    assert relay.proc is not None
    before = rss_kib(relay.proc.pid)
    started = time.perf_counter()
    sem = asyncio.Semaphore(32)
    async with session(ATTACKER) as http:

        async def one(i: int) -> None:
            name = f"{i:06d}" + "u" * 14_994
            async with sem:
                await post(http, relay.base + "/api/v1/tokens", {"username": name, "password": "x"})

        await asyncio.gather(*(one(i) for i in range(count)))
    seconds = time.perf_counter() - started
    await asyncio.sleep(1.0)
    return before, rss_kib(relay.proc.pid), seconds


async def attacks(root: Path, work: Path, args: argparse.Namespace, lifted: bool) -> None:
    name = root.name or str(root)
    flags = ["--register-per-address", "100000"]
    if lifted:
        flags += ["--login-per-address", "100000"]
    # The pool's per-address default, not the test environment's.
    env = {"HOMESEAL_RELAY_HASH_JOBS_PER_ADDRESS": str(Limits().hash_jobs_per_address)}
    relay = RelayProcess(work, root=root, args=flags, env=env, log_level="WARNING")
    await asyncio.to_thread(relay.start)
    try:
        bench = Bench(relay, args.idle)
        await bench.setup()
        if not lifted:
            samples, _ = await bench.victim_logins(args.idle)
            print(f"[{name}] idle login, one at a time:              {percentiles(samples)}")
        print(
            f"[{name}] under attack, limits "
            f"{'lifted (--login-per-address 100000)' if lifted else 'at their defaults'}:"
        )
        for kind, label in (
            ("password", "a. 80 change_password, one client"),
            ("login", "b. 80 logins, one client"),
            ("many", "c. 80 logins, 80 clients"),
        ):
            if lifted and kind == "password":
                continue
            samples, statuses, answers = await bench.under_attack(kind, args.samples)
            busy = f", {statuses[503]} answered 503 busy at once" if statuses[503] else ""
            print(f"[{name}]   {label:<36} {percentiles(samples)}{busy}")
            print(f"[{name}]      attacker's answers: "
                  f"{', '.join(f'{s}: {n}' for s, n in sorted(answers.items()))}")  # fmt: skip
    finally:
        relay.stop()


async def measure(root: Path, work: Path, args: argparse.Namespace) -> None:
    name = root.name or str(root)
    await attacks(root, work / "defaults", args, lifted=False)
    await attacks(root, work / "lifted", args, lifted=True)
    env = {"HOMESEAL_RELAY_HASH_JOBS_PER_ADDRESS": str(Limits().hash_jobs_per_address)}
    relay = RelayProcess(work / "usernames", root=root, env=env, log_level="WARNING")
    await asyncio.to_thread(relay.start)
    try:
        before, after, seconds = await long_usernames(relay, args.usernames)
        print(f"[{name}] {args.usernames:,} logins with 15,000-char usernames: RSS "
              f"{before / 1024:.1f} -> {after / 1024:.1f} MiB "
              f"(+{(after - before) / 1024:.1f} MiB, {seconds:.1f} s)")  # fmt: skip
    finally:
        relay.stop()


async def run(args: argparse.Namespace) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# login benchmark: {os.cpu_count()} CPUs, load average {load}; "
          f"{IN_FLIGHT} password checks in flight during attacks")  # fmt: skip
    trees = [args.relay_root.resolve()]
    if args.compare_with is not None:
        trees.insert(0, args.compare_with.resolve())
    for root in trees:
        with tempfile.TemporaryDirectory(prefix="login-bench-") as tmp:
            await measure(root, Path(tmp), args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relay-root", type=Path, default=ROOT, metavar="DIR")
    parser.add_argument("--compare-with", type=Path, metavar="DIR",
                        help="also measure the relay of this checkout (first)")  # fmt: skip
    parser.add_argument("--idle", type=int, default=100, help="idle logins (and victims)")
    parser.add_argument("--samples", type=int, default=20, help="victim logins per attack")
    parser.add_argument("--usernames", type=int, default=12_000)
    parser.add_argument("--quick", action="store_true", help="20 idle, 5 per attack, 1,000 names")
    args = parser.parse_args()
    if args.quick:
        args.idle, args.samples, args.usernames = 20, 5, 1000
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
