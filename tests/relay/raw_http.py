"""Raw HTTP/1.1 over a socket, for requests no client library sends: non-UTF-8 header
bytes, 100 KB header lines, arbitrary methods and bodies (PROTOCOL §8 error shapes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any, NamedTuple


class RawResponse(NamedTuple):
    status: int
    headers: dict[str, str]  # lowercase names; the last value of a repeated header
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    port: int,
    request: bytes,
    *,
    host: str = "127.0.0.1",
    local: str | None = None,
    within: float = 10.0,
) -> RawResponse:
    """Send `request` (bytes, as is) and read one response; the connection is closed after."""
    reader, writer = await asyncio.open_connection(
        host, port, local_addr=(local, 0) if local else None
    )
    try:
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionError):
                writer.write(request)
                await writer.drain()
            while True:  # skip interim answers (100 Continue)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                if status >= 200 or status == 101:
                    break
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = headers.get("content-length")
            if status in (101, 204, 304) or request.startswith(b"HEAD "):
                body = b""
            elif length is not None:
                body = await reader.readexactly(int(length))
            else:
                body = await reader.read()
            return RawResponse(status, headers, body)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def http_request(
    method: bytes, path: bytes, headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b""
) -> bytes:
    """One request's bytes; Content-Length is added for a body."""
    out = [method + b" " + path + b" HTTP/1.1", b"Host: relay"]
    out += [name + b": " + value for name, value in headers]
    if body:
        out.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(out) + b"\r\n\r\n" + body
