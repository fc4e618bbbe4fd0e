"""A minimal MQTT 3.1.1 client (CONNECT, SUBSCRIBE, QoS 0 PUBLISH) for the comparison run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: bytes) -> bytes:
    return len(s).to_bytes(2, "big") + s


def packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _varint(len(body)) + body


def publish_packet(topic: bytes, payload: bytes) -> bytes:
    return packet(0x30, _str(topic) + payload)


class MqttClient(asyncio.Protocol):
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id.encode()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[None] = loop.create_future()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.on_message: Callable[[bytes], None] = lambda payload: None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Protocol "MQTT" level 4, clean session, keepalive 0 (off).
        body = _str(b"MQTT") + b"\x04\x02\x00\x00" + _str(self.client_id)
        transport.write(packet(0x10, body))

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.connected, self.subscribed):
            if not fut.done():
                fut.set_exception(ConnectionError("MQTT connection lost"))

    def subscribe(self, topic: bytes) -> None:
        assert self.transport is not None
        self.transport.write(packet(0x82, b"\x00\x01" + _str(topic) + b"\x00"))

    def send_raw(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, size = 0, len(buf)
        on_message = self.on_message
        while size - pos >= 2:
            first = buf[pos]
            n, shift, i = 0, 0, pos + 1
            while True:
                if i >= size:
                    del buf[:pos]
                    return
                byte = buf[i]
                n |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            if size - i < n:
                break
            kind = first >> 4
            if kind == 3:
                tlen = (buf[i] << 8) | buf[i + 1]
                on_message(bytes(buf[i + 2 + tlen : i + n]))
            elif kind == 2:
                self.connected.set_result(None)
            elif kind == 9:
                self.subscribed.set_result(None)
            pos = i + n
        del buf[:pos]


async def connect(host: str, port: int, client_id: str, topic: bytes) -> MqttClient:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: MqttClient(client_id), host, port)
    await asyncio.wait_for(proto.connected, 30)
    proto.subscribe(topic)
    await asyncio.wait_for(proto.subscribed, 30)
    return proto
