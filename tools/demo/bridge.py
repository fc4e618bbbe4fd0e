"""A plain-TCP to TLS bridge: the simulated device's way to the relay.

The MicroPython unix port is built without `ssl`, so the simulated device speaks
plain `ws://` (PROTOCOL allows it: content is end-to-end encrypted). The relay
serves TLS only, so this bridge accepts plain connections on 127.0.0.1 and opens
a verified TLS connection to the relay for each one, the way a TLS-capable board
would connect by itself.

usage: python -m tools.demo.bridge --target HOST:PORT --ca CERT [--port N]
prints "PORT <n>" once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(host: str, target_port: int, ca: str, port: int) -> None:
    context = ssl.create_default_context(cafile=ca)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                host, target_port, ssl=context, server_hostname=host
            )
        except (OSError, ssl.SSLError):
            # The relay is down: the device sees its connection close and retries.
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tools.demo.bridge")
    p.add_argument("--target", required=True, help="HOST:PORT of the relay (TLS)")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to verify the relay")
    p.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0: any)")
    args = p.parse_args()
    host, _, port = args.target.rpartition(":")
    asyncio.run(serve(host, int(port), args.ca, args.port))


if __name__ == "__main__":
    main()
