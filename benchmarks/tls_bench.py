"""The device's TLS on the MicroPython unix port: handshake time and what a session costs.

    .venv/bin/python benchmarks/tls_bench.py [--runs 10] [--json FILE]

Against two real relay processes, one serving TLS itself (a certificate for localhost
from testbed.tls) and one plain, it runs a script on the unix port (built with TLS by
scripts/setup, mbedTLS 2.28 from the system) that uses the firmware's own modules:

- the TLS handshake alone (`relay._ssl_context`, CERT_REQUIRED, the CA loaded as the
  firmware loads it; a blocking `wrap_socket` on a connected socket), `--runs` times;
- `ws.connect` to the device endpoint, TCP connect to the websocket upgrade's answer,
  over wss:// and over ws://, `--runs` times each;
- what one open connection holds, wss:// against ws://, read once the relay's
  AUTH_CHALLENGE arrived: the MicroPython heap (`gc.mem_alloc()` after a collection)
  and the C heap (glibc's `malloc_stats`, through `ffi`: where the system mbedTLS
  allocates its contexts and record buffers);

and then the whole firmware (firmware/main.py) once over each: its "relay connected
(N ms)" figure, the heap it reports on the control socket ({"op": "mem"}) and the
process's resident memory (VmRSS).

Figures go to stdout (medians) and, with --json, to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testbed.firmware import DeviceProcess  # noqa: E402  (after the path tweak)
from testbed.paths import MICROPYTHON, micropython_env  # noqa: E402
from testbed.relay import RelayProcess  # noqa: E402
from testbed.tls import TlsFiles, make_tls  # noqa: E402

SCRIPT = r"""
import asyncio, gc, json, socket, sys, time
import ffi
from homeseal import envelope, relay, ws

RUNS = int(sys.argv[1])
TLS_PORT, PLAIN_PORT = int(sys.argv[2]), int(sys.argv[3])
CA = sys.argv[4]
HOST = "localhost"
_malloc_stats = ffi.open("libc.so.6").func("v", "malloc_stats", "")


def c_heap(mark):
    # malloc_stats writes to stderr, which the harness reads after this mark.
    sys.stderr.write("MARK %s\n" % mark)
    _malloc_stats()


def handshake(ctx, nodelay):
    addr = socket.getaddrinfo(HOST, TLS_PORT)[0][-1]
    s = socket.socket()
    s.connect(addr)
    if nodelay:
        s.setsockopt(6, 1, 1)  # TCP_NODELAY, as ws.connect sets it
    t0 = time.ticks_us()
    tls = ctx.wrap_socket(s, server_hostname=HOST)
    dt = time.ticks_diff(time.ticks_us(), t0)
    tls.close()
    return dt


async def connect(bufs, ctx):
    port = TLS_PORT if ctx else PLAIN_PORT
    t0 = time.ticks_us()
    w = await ws.connect(HOST, port, "/ws/device", relay.SUBPROTOCOL, bufs, ctx)
    return w, time.ticks_diff(time.ticks_us(), t0)


async def main():
    bufs = ws.Buffers(envelope.MAX_FRAME)
    gc.collect()
    before = gc.mem_alloc()
    ctx = relay._ssl_context(CA)
    gc.collect()
    out = {"ssl_context_gc_bytes": gc.mem_alloc() - before}
    out["handshake_us"] = [handshake(ctx, True) for _ in range(RUNS)]
    out["handshake_nagle_us"] = [handshake(ctx, False) for _ in range(RUNS)]
    for name, c in (("wss_connect_us", ctx), ("ws_connect_us", None)):
        out[name] = []
        for _ in range(RUNS):
            w, dt = await connect(bufs, c)
            out[name].append(dt)
            w.abort()
    for name, c in (("ws", None), ("wss", ctx)) * 2:  # the second round counts
        gc.collect()
        before = gc.mem_alloc()
        c_heap(name + " before")
        w, _ = await connect(bufs, c)
        op, msg = await w.recv()
        assert msg[0] == envelope.AUTH_CHALLENGE
        gc.collect()
        out[name + "_gc_bytes"] = gc.mem_alloc() - before
        c_heap(name + " open")
        w.abort()
        w = msg = None
        await asyncio.sleep_ms(50)
    print("RESULT", json.dumps(out))


asyncio.run(main())
"""


def c_heap_deltas(stderr: str) -> dict[str, int]:
    """From the script's marks and malloc_stats reports: the C heap's growth per open
    connection (bytes in use, the last round of each)."""
    in_use: dict[str, int] = {}
    for block in stderr.split("MARK ")[1:]:
        mark, _, report = block.partition("\n")
        total = report.split("Total (incl. mmap):", 1)[1]
        found = re.search(r"in use bytes\s*=\s*(\d+)", total)
        assert found is not None, report
        in_use[mark] = int(found[1])
    return {
        f"{name}_c_heap_bytes": in_use[f"{name} open"] - in_use[f"{name} before"]
        for name in ("ws", "wss")
    }


def vm_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found[1])


def device(workdir: Path, relay: RelayProcess, ca: Path | None) -> DeviceProcess:
    """An unprovisioned device on `relay` (over wss:// with `ca`): it connects all the same."""
    dev = DeviceProcess(workdir, relay.device_url)
    fields: dict[str, Any] = {"url": relay.device_url}
    if ca is not None:
        shutil.copy(ca, workdir / "relay-ca.pem")
        fields["ca"] = "relay-ca.pem"
    dev.write_config(relay=fields)
    return dev


async def whole_device(dev: DeviceProcess) -> dict[str, Any]:
    dev.start()
    try:
        connected = await dev.wait_log_async(r"relay connected claimed=0 \((\d+) ms\)", 60)
        await asyncio.sleep(1)
        mem = await dev.mem()
        return {
            "connect_ms": int(connected[1]),
            "gc_alloc": mem["alloc"],
            "rss_kib": vm_rss_kib(dev.pid),
        }
    finally:
        dev.stop()


def run_script(work: Path, runs: int, tls_relay: RelayProcess, plain_relay: RelayProcess,
               ca: Path) -> dict[str, Any]:  # fmt: skip
    script = work / "tls_bench_mpy.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [str(MICROPYTHON), str(script), str(runs), str(tls_relay.port), str(plain_relay.port),
         str(ca)],
        env=micropython_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"the script failed:\n{proc.stdout}\n{proc.stderr}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    raw: dict[str, Any] = json.loads(line[len("RESULT ") :])
    results: dict[str, Any] = {"raw": raw, **c_heap_deltas(proc.stderr)}
    for name in ("handshake_us", "handshake_nagle_us", "wss_connect_us", "ws_connect_us"):
        results[name.replace("_us", "_ms_median")] = statistics.median(raw[name]) / 1000
    for name in ("ssl_context_gc_bytes", "ws_gc_bytes", "wss_gc_bytes"):
        results[name] = raw[name]
    return results


def run(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="homeseal-tls-bench-") as tmp:
        work = Path(tmp)
        tls: TlsFiles = make_tls(work / "tls")
        with (
            RelayProcess(work / "tls-relay", serve=tls, url_host="localhost") as tls_relay,
            RelayProcess(work / "plain-relay", url_host="localhost") as plain_relay,
        ):
            results = run_script(work, runs, tls_relay, plain_relay, tls.ca)
            results["device_ws"] = asyncio.run(
                whole_device(device(work / "dev-ws", plain_relay, None))
            )
            results["device_wss"] = asyncio.run(
                whole_device(device(work / "dev-wss", tls_relay, tls.ca))
            )
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    r = run(args.runs)
    print(
        f"TLS handshake alone (median of {args.runs}): {r['handshake_ms_median']:.1f} ms "
        f"(without TCP_NODELAY: {r['handshake_nagle_ms_median']:.1f} ms)"
    )
    print(f"the SSLContext (CA loaded): {r['ssl_context_gc_bytes']} B of the MicroPython heap")
    print(
        f"ws.connect, TCP to upgrade answer (median of {args.runs}): "
        f"wss {r['wss_connect_ms_median']:.1f} ms, ws {r['ws_connect_ms_median']:.1f} ms"
    )
    print(
        "one open connection, wss against ws: MicroPython heap "
        f"{r['wss_gc_bytes']} vs {r['ws_gc_bytes']} B (+{r['wss_gc_bytes'] - r['ws_gc_bytes']} B), "
        f"C heap {r['wss_c_heap_bytes']} vs {r['ws_c_heap_bytes']} B "
        f"(+{r['wss_c_heap_bytes'] - r['ws_c_heap_bytes']} B)"
    )
    dws, dwss = r["device_ws"], r["device_wss"]
    print(
        f"firmware: relay connected in {dwss['connect_ms']} ms (wss) vs {dws['connect_ms']} ms "
        f"(ws); heap {dwss['gc_alloc']} vs {dws['gc_alloc']} B "
        f"(+{dwss['gc_alloc'] - dws['gc_alloc']} B); RSS {dwss['rss_kib']} vs "
        f"{dws['rss_kib']} KiB (+{dwss['rss_kib'] - dws['rss_kib']} KiB)"
    )
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
