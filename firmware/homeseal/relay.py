# The device's connection to the relay (PROTOCOL.md §2-§4): websocket,
# challenge-response authentication with the static key, heartbeats, and
# reconnection with jittered exponential backoff. Frames after AUTH_OK go to
# the device through `on_frame(type, peer, payload)`. CLAIM and RELEASE go out
# authenticated under the connection's control key k_ctl (§4.1).
import asyncio
import gc
import os
import sys
import time

from micropython import const

from homeseal import ct, envelope, health, kdf, ws, x25519

SUBPROTOCOL = "homeseal.v1"
AUTH_LABEL = b"HomeSeal v1 relay auth"
CONTROL_LABEL = b"HomeSeal v1 relay control"
ROLE_DEVICE = b"\x01"

_AUTH_TIMEOUT_MS = const(10000)
_PING_IDLE_MS = const(20000)  # ping the relay after this long without hearing from it
_DEAD_MS = const(50000)  # give up on a connection this long without a byte
_STALL_MS = const(20000)  # a send that cannot drain for this long means a dead link
_STABLE_MS = const(30000)  # a connection that lived this long resets the backoff
_BACKOFF_CAP_MS = const(60000)
# The cap once the relay answered (TCP, websocket upgrade and AUTH_CHALLENGE
# worked) and the link failed after that: the relay is there, and what failed
# may be a link attacker's garbling (an AUTH frame with a flipped bit, an
# injected frame), which must not keep the device away for long once it stops.
_ANSWERED_CAP_MS = const(5000)

CLOSE_PROTOCOL_ERROR = const(4000)


class AuthError(Exception):
    pass


def backoff_limit_ms(attempt, answered=False):
    """The longest delay after failed attempt `attempt` (0 the first): min(cap,
    1 s * 2^attempt), cap 60 s, or 5 s when the relay answered (§2.1)."""
    cap = _ANSWERED_CAP_MS if answered else _BACKOFF_CAP_MS
    return cap if attempt >= 6 else min(cap, 1000 << attempt)


def backoff_ms(attempt, answered=False):
    """A delay drawn uniformly from [0, backoff_limit_ms(attempt, answered)] (§2.1)."""
    return int.from_bytes(os.urandom(4), "big") % (backoff_limit_ms(attempt, answered) + 1)


def auth_response(priv, pub, challenge, pinned=None):
    """(AUTH_RESPONSE payload `s.pub ‖ mac`, k_ctl) for an AUTH_CHALLENGE payload `R ‖ nonce`.

    k_ctl (§4.1) comes from the same dh, so the costly X25519 runs once."""
    if len(challenge) != 64:
        raise AuthError("AUTH_CHALLENGE payload is not 64 bytes")
    R = bytes(challenge[0:32])
    nonce = bytes(challenge[32:64])
    if pinned is not None and not ct.equal(R, pinned):
        raise AuthError("relay key does not match relay.relay_key")
    try:
        dh = x25519.dh(priv, R)
    except ValueError:
        raise AuthError("relay key gives an all-zero shared secret")
    k = kdf.hkdf(nonce, dh, AUTH_LABEL, 32)
    mac = kdf.hmac_sha256(k, AUTH_LABEL + ROLE_DEVICE + R + pub + nonce)
    return pub + mac, kdf.hkdf(nonce, dh, CONTROL_LABEL, 32)


def control_payload(k_ctl, ftype, peer, seq):
    """CLAIM/RELEASE payload `seq (4) ‖ HMAC-SHA256(k_ctl, type ‖ peer id ‖ seq)` (§4.1)."""
    msg = bytearray(15)
    msg[0] = ftype
    msg[1:11] = peer
    msg[11] = (seq >> 24) & 0xFF
    msg[12] = (seq >> 16) & 0xFF
    msg[13] = (seq >> 8) & 0xFF
    msg[14] = seq & 0xFF
    return bytes(msg[11:15]) + kdf.hmac_sha256(k_ctl, msg)


def _ca_certs(data):
    """The DER certificates of a CA file (PEM with one or more blocks, or DER)."""
    if b"-----BEGIN" not in data:
        return [data]
    import binascii

    certs = []
    b64 = None
    for raw in data.split(b"\n"):
        line = raw.strip()
        if line.startswith(b"-----BEGIN"):
            b64 = []
        elif line.startswith(b"-----END"):
            if b64 is not None:
                certs.append(binascii.a2b_base64(b"".join(b64)))
            b64 = None
        elif b64 is not None:
            b64.append(line)
    return certs


def _ssl_context(ca_path):
    """A client context that verifies the relay against the configured CA.

    Built explicitly: MicroPython's `ssl` wrapper defaults to CERT_NONE.
    """
    try:
        import tls

        wrapper = False
    except ImportError:
        import ssl as tls

        wrapper = True
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    with open(ca_path, "rb") as f:
        certs = _ca_certs(f.read())
    if not certs:
        raise ValueError("no certificate in " + ca_path)
    for der in certs:
        # tls.SSLContext takes cadata positionally; the ssl wrapper's first
        # positional argument is a file name.
        if wrapper:
            ctx.load_verify_locations(cadata=der)
        else:
            ctx.load_verify_locations(der)
    return ctx


class Relay:
    def __init__(self, rcfg, priv, pub, device_id, log, bufs=None):
        self._cfg = rcfg
        self._priv = priv
        self._pub = pub
        self._id = device_id
        self._log = log
        self._ssl = None
        self.ws = None
        self.on_frame = None  # async (ftype, peer, payload)
        self.on_up = None  # async (claimed)
        self.connected = False
        self.connects = 0  # successful authentications, for logs and tests
        self.connect_started = 0  # ticks when the current connection's TCP connect began
        self._answered = False  # the current connection got its AUTH_CHALLENGE
        self._dead = False
        self._bufs = bufs or ws.Buffers(envelope.MAX_FRAME)
        # Per connection (§4.1): the control key and the seq of the last control frame.
        self._k_ctl = None
        self._seq = 0
        self._ctl_lock = asyncio.Lock()

    async def send(self, ftype, peer, payload=b""):
        """Send one frame; False when there is no connection (the frame is dropped).

        CLAIM and RELEASE get their `seq ‖ mac` payload here (any payload given is
        ignored)."""
        if ftype == envelope.CLAIM or ftype == envelope.RELEASE:
            return await self._send_control(ftype, peer)
        w = self.ws
        if w is None or not self.connected:
            return False
        try:
            await w.send(envelope.header(ftype, peer), payload)
            return True
        except ws.WSError:
            return False

    async def _send_control(self, ftype, peer):
        # The lock keeps seq order = wire order when two tasks send control frames.
        async with self._ctl_lock:
            w = self.ws
            if w is None or not self.connected or self._k_ctl is None:
                return False
            self._seq += 1
            payload = control_payload(self._k_ctl, ftype, peer, self._seq)
            try:
                await w.send(envelope.header(ftype, peer), payload)
                return True
            except ws.WSError:
                return False

    async def run(self):
        attempt = 0
        while True:
            t0 = time.ticks_ms()
            try:
                code = await self._connect_once()
            except Exception as e:
                # Whatever went wrong (a bad CA file, a bug), the link retries.
                self._log("relay link error")
                sys.print_exception(e)
                code = ws.CLOSE_ABNORMAL
            if self.connects and time.ticks_diff(time.ticks_ms(), t0) >= _STABLE_MS:
                attempt = 0
            # Always the capped backoff, after 4001 too: one flipped bit on a ws://
            # link must not take the device offline for long (§2.1).
            delay = backoff_ms(attempt, self._answered)
            limit = backoff_limit_ms(attempt, self._answered)
            attempt = min(attempt + 1, 16)
            self._log("relay reconnect in %d ms (close %d, at most %d ms)" % (delay, code, limit))
            await asyncio.sleep_ms(delay)

    async def _connect_once(self):
        """One connection, from TCP connect to its end; returns the close code."""
        c = self._cfg
        code = ws.CLOSE_ABNORMAL
        self._answered = False
        self.connect_started = t0 = time.ticks_ms()
        if c["tls"] and self._ssl is None:
            try:
                self._ssl = _ssl_context(c["ca"])
            except (OSError, ValueError) as e:
                # A CA file that is there (config.py checked) but holds no usable certificate.
                self._log("relay connect failed: relay.ca %s: %s" % (c["ca"], e))
                return code
        try:
            gc.collect()
            self.ws = await ws.connect(
                c["host"], c["port"], c["path"], SUBPROTOCOL, self._bufs, self._ssl
            )
        except (OSError, ws.WSError) as e:
            self._log("relay connect failed: %s" % e)
            return code
        w = self.ws
        keepalive = None
        try:
            claimed = await asyncio.wait_for_ms(self._authenticate(w), _AUTH_TIMEOUT_MS)
            self.connected = True
            self.connects += 1
            health.connects += 1  # the reconnects sensor's count (every Relay of the boot)
            self._log(
                "relay connected claimed=%d (%d ms)"
                % (claimed, time.ticks_diff(time.ticks_ms(), t0))
            )
            self._dead = False
            keepalive = asyncio.create_task(self._keepalive(w, asyncio.current_task()))
            if self.on_up:
                await self.on_up(claimed)
            await self._serve(w)
        except asyncio.CancelledError:
            if not self._dead:
                raise
            self._log("relay connection dead")
        except asyncio.TimeoutError:
            self._log("relay auth timed out")
            await w.close(CLOSE_PROTOCOL_ERROR)
        except AuthError as e:
            self._log("relay auth refused: %s" % e)
            await w.close(ws.CLOSE_NORMAL)
        except envelope.EnvelopeError as e:
            self._log("relay protocol error: %s" % e)
            await w.close(ws.CLOSE_TOO_BIG if "big" in str(e) else CLOSE_PROTOCOL_ERROR)
        except ws.WSError as e:
            code = e.code
            self._log("relay closed %d: %s" % (code, e))
        except OSError as e:
            self._log("relay connection error: %s" % e)
        finally:
            self.connected = False
            self._k_ctl = None
            if keepalive is not None:
                keepalive.cancel()
            w.abort()
            self.ws = None
        return code

    async def _authenticate(self, w):
        op, msg = await w.recv()
        if op != ws.OP_BINARY:
            raise envelope.EnvelopeError("text message")
        ftype, _, payload = envelope.parse(msg)
        if ftype != envelope.AUTH_CHALLENGE:
            raise envelope.EnvelopeError("expected AUTH_CHALLENGE")
        self._answered = True
        resp, k_ctl = auth_response(self._priv, self._pub, payload, self._cfg["relay_key"])
        await w.send(envelope.header(envelope.AUTH_RESPONSE, self._id), resp)
        op, msg = await w.recv()
        if op != ws.OP_BINARY:
            raise envelope.EnvelopeError("text message")
        ftype, _, payload = envelope.parse(msg)
        if ftype != envelope.AUTH_OK or len(payload) != 1:
            raise envelope.EnvelopeError("expected AUTH_OK")
        self._k_ctl = k_ctl
        self._seq = 0
        return payload[0] & 1

    async def _serve(self, w):
        while True:
            op, msg = await w.recv()
            if op != ws.OP_BINARY:
                raise envelope.EnvelopeError("text message")
            ftype, peer, payload = envelope.parse(msg)
            if ftype in (envelope.AUTH_CHALLENGE, envelope.AUTH_OK):
                raise envelope.EnvelopeError("authentication frame out of place")
            try:
                await self.on_frame(ftype, peer, payload)
            except (ws.WSError, asyncio.CancelledError):
                raise
            except Exception as e:
                # A bug in a handler must not take the link down; say so loudly.
                self._log("frame handler error")
                sys.print_exception(e)

    async def _keepalive(self, w, conn_task):
        while True:
            await asyncio.sleep_ms(5000)
            now = time.ticks_ms()
            idle = time.ticks_diff(now, w.last_rx)
            stalled = w.tx_since is not None and time.ticks_diff(now, w.tx_since) > _STALL_MS
            if idle > _DEAD_MS or stalled:
                self._dead = True
                w.abort()
                conn_task.cancel()
                return
            if idle > _PING_IDLE_MS:
                try:
                    await w.ping()
                except ws.WSError:
                    pass
