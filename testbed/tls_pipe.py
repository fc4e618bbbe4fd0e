"""A TCP pipe that adds or removes TLS, as its own process, in either direction:

- TLS listener → plain upstream (`--cert/--key`): a TLS-terminating front for a relay
  that serves plain HTTP (`--behind-proxy`), as nginx or Caddy would be in production.
  Home Assistant reaches the relay through it and must verify it. With `--ca` too, the
  upstream is a relay serving TLS: a front with a certificate of a test's making (another
  host name, expired) before a real relay (tests/firmware/test_tls.py).
- plain listener → TLS upstream (`--ca`): a plain client's way to a relay that serves
  TLS only, verified against the CA.

    python -m testbed.tls_pipe --upstream HOST:PORT [--cert CERT --key KEY] [--ca CA]
                               [--port N]
prints `PORT <n>` once it listens on 127.0.0.1; SIGTERM or SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
from pathlib import Path

from .paths import ROOT
from .process import ChildProcess
from .tls import TlsFiles


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(
    upstream: tuple[str, int],
    port: int,
    listen_tls: ssl.SSLContext | None,
    upstream_tls: ssl.SSLContext | None,
) -> None:
    host, upstream_port = upstream

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                host,
                upstream_port,
                ssl=upstream_tls,
                server_hostname=host if upstream_tls is not None else None,
            )
        except (OSError, ssl.SSLError):
            # The upstream is down: the client sees its connection close and retries.
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=listen_tls)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m testbed.tls_pipe", description=__doc__)
    p.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    p.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0: any)")
    p.add_argument("--cert", help="listen with TLS: the server certificate (PEM)")
    p.add_argument("--key", help="the server certificate's key (PEM)")
    p.add_argument("--ca", help="connect upstream with TLS, verified against this CA (PEM)")
    args = p.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    listen_tls = None
    if args.cert:
        listen_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        listen_tls.load_cert_chain(args.cert, args.key)
    upstream_tls = ssl.create_default_context(cafile=args.ca) if args.ca else None
    asyncio.run(serve((host, int(port)), args.port, listen_tls, upstream_tls))


class TlsPipe(ChildProcess):
    """`python -m testbed.tls_pipe` as a child process.

    `server_tls`: listen with TLS (a terminating front); `upstream_ca`: connect upstream
    with TLS verified against it (to a relay serving TLS). `port` 0 picks a free one,
    known once started."""

    name = "TLS pipe"

    def __init__(
        self,
        log: Path,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        port: int = 0,
        server_tls: TlsFiles | None = None,
        upstream_ca: Path | None = None,
    ) -> None:
        super().__init__(log)
        self.upstream = (upstream_host, upstream_port)
        self.requested_port = port
        self.port = port
        self.server_tls = server_tls
        self.upstream_ca = upstream_ca

    @property
    def base(self) -> str:
        scheme = "https" if self.server_tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def device_url(self) -> str:
        """A relay's device endpoint through this pipe."""
        return self.base.replace("http", "ws", 1) + "/ws/device"

    def start(self, within: float = 15) -> None:
        host, port = self.upstream
        cmd = [sys.executable, "-m", "testbed.tls_pipe", "--upstream", f"{host}:{port}",
               "--port", str(self.requested_port)]  # fmt: skip
        if self.server_tls is not None:
            cmd += ["--cert", str(self.server_tls.cert), "--key", str(self.server_tls.key)]
        if self.upstream_ca is not None:
            cmd += ["--ca", str(self.upstream_ca)]
        self.spawn(cmd, cwd=ROOT)
        listening = self.wait_log(r"PORT (\d+)", within)
        self.port = int(listening.group(1))


if __name__ == "__main__":
    main()
