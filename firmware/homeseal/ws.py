# A small RFC 6455 websocket client over asyncio streams.
#
# Fixed buffers (Buffers, allocated once and reused by every connection): one
# for the reassembled message (the message size cap), a read-ahead buffer, and
# a small chunk buffer in which outgoing data is masked and written piece by
# piece. Nothing grows with what the server sends: an oversized message closes
# with 1009 before it is read. A message returned by recv() is a memoryview
# into the receive buffer and is valid until the next recv().
import asyncio
import binascii
import hashlib
import os
import time

from micropython import const

OP_CONT = const(0)
OP_TEXT = const(1)
OP_BINARY = const(2)
OP_CLOSE = const(8)
OP_PING = const(9)
OP_PONG = const(10)

CLOSE_NORMAL = const(1000)
CLOSE_GOING_AWAY = const(1001)
CLOSE_PROTOCOL = const(1002)
CLOSE_TOO_BIG = const(1009)
CLOSE_ABNORMAL = const(1006)  # never sent: "the connection dropped"

_READ_AHEAD = const(512)
_CHUNK = const(256)  # outgoing frames are masked and written in pieces this big
_MAX_HANDSHAKE = const(2048)  # bytes of HTTP response headers we accept
_CLOSE_WAIT_MS = const(2000)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WSError(Exception):
    """The connection failed or the server broke the protocol; `code` is the close code."""

    def __init__(self, msg, code=CLOSE_ABNORMAL):
        super().__init__(msg)
        self.code = code


class WSClosed(WSError):
    """The server closed the connection with `code` (1006 if it just dropped)."""


def _sha1(data):
    # Only for Sec-WebSocket-Accept; builds without hashlib.sha1 (the unix
    # port here) use this. 32-bit arithmetic masked explicitly. The message
    # schedule is the 16-word ring of FIPS 180-4 §6.1.3, not 80 words: a
    # connection on a fragmented 128 KiB heap could not find the 640 bytes
    # (measured). It stays in this module: imported for each connection
    # instead (tried), it fragmented the heap further.
    h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
    ml = len(data) * 8
    data = bytes(data) + b"\x80" + bytes((55 - len(data)) % 64) + ml.to_bytes(8, "big")
    m = 0xFFFFFFFF
    w = [0] * 16
    for off in range(0, len(data), 64):
        for i in range(16):
            w[i] = int.from_bytes(data[off + 4 * i : off + 4 * i + 4], "big")
        a, b, c, d, e = h0, h1, h2, h3, h4
        for i in range(80):
            s = i & 15
            if i >= 16:
                x = w[(s + 13) & 15] ^ w[(s + 8) & 15] ^ w[(s + 2) & 15] ^ w[s]
                w[s] = ((x << 1) | (x >> 31)) & m
            if i < 20:
                f = (b & c) | (~b & d)
                k = 0x5A827999
            elif i < 40:
                f = b ^ c ^ d
                k = 0x6ED9EBA1
            elif i < 60:
                f = (b & c) | (b & d) | (c & d)
                k = 0x8F1BBCDC
            else:
                f = b ^ c ^ d
                k = 0xCA62C1D6
            t = ((((a << 5) | (a >> 27)) & m) + (f & m) + e + k + w[s]) & m
            e, d, c, b, a = d, c, ((b << 30) | (b >> 2)) & m, a, t
        h0 = (h0 + a) & m
        h1 = (h1 + b) & m
        h2 = (h2 + c) & m
        h3 = (h3 + d) & m
        h4 = (h4 + e) & m
    return b"".join(x.to_bytes(4, "big") for x in (h0, h1, h2, h3, h4))


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (both base64 ASCII bytes)."""
    sha1 = getattr(hashlib, "sha1", None)
    digest = sha1(key + _GUID).digest() if sha1 else _sha1(key + _GUID)
    return binascii.b2a_base64(digest).strip()


class Buffers:
    """The connection's buffers, allocated once (at boot) so that reconnecting
    never needs a large contiguous block of a fragmented heap."""

    def __init__(self, max_message):
        self.msg = bytearray(max_message)
        self.ra = bytearray(_READ_AHEAD)
        self.ctl = bytearray(125)
        self.hdr = bytearray(8)
        self.out = bytearray(_CHUNK)


class WebSocket:
    def __init__(self, reader, writer, bufs, tcp=None):
        self._r = reader
        self._w = writer
        self._tcp = tcp  # the TCP socket under a TLS one (see _shutdown)
        self._msg = bufs.msg
        self._mmv = memoryview(self._msg)
        self._ra = bufs.ra
        self._ramv = memoryview(self._ra)
        self._ra_start = 0
        self._ra_end = 0
        self._hdr = bufs.hdr
        self._ctl = bufs.ctl
        self._out = bufs.out
        self._omv = memoryview(self._out)
        self._max_send = len(bufs.msg)
        self._lock = asyncio.Lock()
        self.close_sent = False
        self.closed = False
        self.last_rx = time.ticks_ms()
        self.tx_since = None  # ticks when a send started waiting, for stall detection

    # ---------------------------------------------------------------- reading

    async def _fill(self):
        n = None
        while n is None:
            n = await self._r.readinto(self._ramv)
        if not n:
            raise WSClosed("connection dropped")
        self._ra_start = 0
        self._ra_end = n
        self.last_rx = time.ticks_ms()

    async def _read_into(self, mv):
        """Fill mv exactly, from the read-ahead buffer first."""
        off = 0
        need = len(mv)
        while off < need:
            avail = self._ra_end - self._ra_start
            if avail:
                n = min(avail, need - off)
                mv[off : off + n] = self._ramv[self._ra_start : self._ra_start + n]
                self._ra_start += n
                off += n
            elif need - off >= _READ_AHEAD:
                n = await self._r.readinto(mv[off:])
                if n is None:
                    continue
                if not n:
                    raise WSClosed("connection dropped")
                self.last_rx = time.ticks_ms()
                off += n
            else:
                await self._fill()

    async def _readline(self, budget):
        """One header line (without CRLF) of at most `budget` bytes, as bytes."""
        line = bytearray()
        while True:
            if self._ra_start == self._ra_end:
                await self._fill()
            c = self._ra[self._ra_start]
            self._ra_start += 1
            if c == 10:
                if line and line[-1] == 13:
                    line = line[:-1]
                return bytes(line)
            if len(line) >= budget:
                raise WSError("handshake response too long", CLOSE_PROTOCOL)
            line.append(c)

    async def recv(self):
        """The next data message as (opcode, memoryview).

        Answers pings, records pongs, and completes the close handshake
        (raising WSClosed). A protocol violation by the server sends a close
        frame and raises WSError.
        """
        hdr = self._hdr
        size = 0
        op0 = -1
        while True:
            await self._read_into(memoryview(hdr)[0:2])
            b0 = hdr[0]
            b1 = hdr[1]
            fin = b0 & 0x80
            op = b0 & 0x0F
            if b0 & 0x70:
                await self._fail(CLOSE_PROTOCOL, "reserved bits set")
            if b1 & 0x80:
                await self._fail(CLOSE_PROTOCOL, "masked frame from server")
            ln = b1 & 0x7F
            if ln == 126:
                await self._read_into(memoryview(hdr)[0:2])
                ln = (hdr[0] << 8) | hdr[1]
            elif ln == 127:
                await self._read_into(memoryview(hdr)[0:8])
                if hdr[0] | hdr[1] | hdr[2] | hdr[3]:
                    await self._fail(CLOSE_TOO_BIG, "message too big")
                ln = int.from_bytes(hdr[4:8], "big")
            if op >= 8:
                if not fin or ln > 125:
                    await self._fail(CLOSE_PROTOCOL, "bad control frame")
                body = memoryview(self._ctl)[0:ln]
                await self._read_into(body)
                if op == OP_PING:
                    await self._send(OP_PONG, body)
                elif op == OP_CLOSE:
                    await self._on_close(body)
                elif op != OP_PONG:
                    await self._fail(CLOSE_PROTOCOL, "unknown control opcode")
                continue
            if op == OP_CONT:
                if op0 < 0:
                    await self._fail(CLOSE_PROTOCOL, "continuation without a message")
            elif op == OP_TEXT or op == OP_BINARY:
                if op0 >= 0:
                    await self._fail(CLOSE_PROTOCOL, "new message inside a fragmented one")
                op0 = op
            else:
                await self._fail(CLOSE_PROTOCOL, "unknown opcode")
            if ln > len(self._msg) - size:
                await self._fail(CLOSE_TOO_BIG, "message too big")
            await self._read_into(self._mmv[size : size + ln])
            size += ln
            if fin:
                return op0, self._mmv[0:size]

    async def _on_close(self, body):
        code = CLOSE_ABNORMAL if len(body) < 2 else (body[0] << 8) | body[1]
        if not self.close_sent:
            # Echo the code, as RFC 6455 §5.5.1 asks; 1005 (no code) is never sent.
            try:
                await self._send(OP_CLOSE, body[0:2] if len(body) >= 2 else b"")
            except Exception:
                pass
        self._shutdown()
        raise WSClosed("closed by server", code)

    async def _fail(self, code, reason):
        try:
            await self._send_close(code)
        except Exception:
            pass
        self._shutdown()
        raise WSError(reason, code)

    # ---------------------------------------------------------------- writing

    async def send(self, data, data2=None):
        """Send one binary message made of data (‖ data2); no copy besides masking."""
        await self._send(OP_BINARY, data, data2)

    async def ping(self, payload=b""):
        await self._send(OP_PING, payload)

    async def _send(self, op, data, data2=None):
        if self.closed or (self.close_sent and op != OP_CLOSE):
            raise WSClosed("connection closed")
        n = len(data) + (len(data2) if data2 is not None else 0)
        if n > self._max_send:
            raise WSError("message too big to send", CLOSE_TOO_BIG)
        async with self._lock:
            out = self._out
            out[0] = 0x80 | op
            if n < 126:
                out[1] = 0x80 | n
                i = 2
            else:
                out[1] = 0x80 | 126
                out[2] = n >> 8
                out[3] = n & 0xFF
                i = 4
            mask = os.urandom(4)
            out[i : i + 4] = mask
            i += 4
            j = 0
            self.tx_since = time.ticks_ms()
            try:
                for part in (data, data2):
                    if part is None:
                        continue
                    for b in part:
                        out[i] = b ^ mask[j & 3]
                        i += 1
                        j += 1
                        if i == _CHUNK:
                            await self._write(i)
                            i = 0
                if i:
                    await self._write(i)
            except OSError as e:
                self._shutdown()
                raise WSClosed("send failed: %s" % e)
            finally:
                self.tx_since = None

    async def _write(self, n):
        self._w.write(self._omv[0:n])
        await self._w.drain()

    async def _send_close(self, code):
        if self.close_sent or self.closed:
            return
        self.close_sent = True
        await self._send(OP_CLOSE, bytes((code >> 8, code & 0xFF)))

    async def close(self, code=CLOSE_NORMAL):
        """Close handshake: send Close, wait briefly for the server's, drop the socket.

        Only call when no recv() is pending in another task.
        """
        if self.closed:
            return
        try:
            await self._send_close(code)
            await asyncio.wait_for_ms(self._drain_until_close(), _CLOSE_WAIT_MS)
        except Exception:
            pass
        self._shutdown()

    async def _drain_until_close(self):
        while True:
            try:
                await self.recv()
            except WSError:
                return

    def abort(self):
        """Drop the connection without a close handshake (dead peer)."""
        self._shutdown()

    def _shutdown(self):
        if not self.closed:
            self.closed = True
            try:
                self._w.s.close()
            except Exception:
                pass
            if self._tcp is not None:
                # A TLS socket that failed (its handshake; with mbedTLS 2 any TLS
                # error) lets go of the TCP socket without closing it: one file
                # descriptor lost per failed attempt (measured). Closing it again
                # right after the TLS socket closed it is harmless: nothing runs in
                # between that could take the descriptor.
                try:
                    self._tcp.close()
                except Exception:
                    pass


async def _open(host, port, ssl_ctx):
    """(stream, TCP socket under TLS or None); the TLS handshake runs on first I/O."""
    stream, _ = await asyncio.open_connection(host, port)
    if not ssl_ctx:
        return stream, None
    # Wrapped here rather than by open_connection(ssl=...), to keep the TCP socket.
    # server_hostname: mbedTLS checks the certificate's names against it (SNI too).
    tcp = stream.s
    try:
        s = ssl_ctx.wrap_socket(tcp, server_hostname=host, do_handshake_on_connect=False)
        s.setblocking(False)
    except BaseException:
        tcp.close()
        raise
    return asyncio.StreamWriter(s), tcp


def tls_error(e):
    """One line for an error of mbedTLS, None for any other: a refused certificate
    is a ValueError of one line per reason (each after a newline), other TLS
    errors OSError(-code, text)."""
    text = str(e)
    if isinstance(e, ValueError) and text.startswith("\n"):
        reasons = [line.strip() for line in text.split("\n") if line.strip()]
        return "TLS certificate refused: " + "; ".join(reasons)
    args = e.args
    if isinstance(e, OSError) and len(args) > 1 and isinstance(args[1], str) and args[0] < 0:
        return "TLS error: " + args[1]
    return None


async def connect(host, port, path, subprotocol, bufs, ssl_ctx=None, timeout_ms=10000):
    """Open a websocket; raises WSError (or OSError) on any failure."""
    try:
        stream, tcp = await asyncio.wait_for_ms(_open(host, port, ssl_ctx), timeout_ms)
    except asyncio.TimeoutError:
        raise WSError("connect timed out")
    try:
        # TCP_NODELAY (IPPROTO_TCP 6, option 1): small frames go out at once
        # instead of waiting for the relay's delayed ACK.
        (tcp or stream.s).setsockopt(6, 1, 1)
    except (AttributeError, OSError):
        pass
    ws = WebSocket(stream, stream, bufs, tcp)
    try:
        await asyncio.wait_for_ms(
            _handshake(ws, host, port, path, subprotocol, ssl_ctx), timeout_ms
        )
    except asyncio.TimeoutError:
        ws.abort()
        raise WSError("handshake timed out")
    except (ValueError, OSError) as e:
        ws.abort()
        msg = tls_error(e) if ssl_ctx else None
        if msg is None:
            raise
        raise WSError("%s (%s:%d)" % (msg, host, port))
    except BaseException:
        ws.abort()
        raise
    return ws


async def _handshake(ws, host, port, path, subprotocol, ssl_ctx):
    key = binascii.b2a_base64(os.urandom(16)).strip()
    default_port = 443 if ssl_ctx else 80
    hostport = host if port == default_port else "%s:%d" % (host, port)
    req = (
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: %s\r\n\r\n" % (path, hostport, key.decode(), subprotocol)
    )
    ws._w.write(req.encode())
    await ws._w.drain()
    budget = _MAX_HANDSHAKE
    status = await ws._readline(budget)
    budget -= len(status)
    parts = status.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.1"):
        raise WSError("handshake: not an HTTP response", CLOSE_PROTOCOL)
    if parts[1] != b"101":
        raise WSError("handshake: HTTP " + parts[1].decode(), CLOSE_PROTOCOL)
    upgrade = connection = accept = proto = None
    while True:
        line = await ws._readline(budget)
        budget -= len(line) + 2
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep:
            raise WSError("handshake: bad header line", CLOSE_PROTOCOL)
        name = name.strip().lower()
        value = value.strip()
        if name == b"upgrade":
            upgrade = value.lower()
        elif name == b"connection":
            connection = value.lower()
        elif name == b"sec-websocket-accept":
            accept = value
        elif name == b"sec-websocket-protocol":
            proto = value
    if upgrade != b"websocket" or connection is None or b"upgrade" not in connection:
        raise WSError("handshake: not a websocket upgrade", CLOSE_PROTOCOL)
    if accept != accept_key(key):
        raise WSError("handshake: wrong Sec-WebSocket-Accept", CLOSE_PROTOCOL)
    if proto != subprotocol.encode():
        raise WSError("handshake: subprotocol not accepted", CLOSE_PROTOCOL)
